"""`atento prepare CONFIG [--workers N]` and `atento prepare --clean`."""

from __future__ import annotations

import pytest

from atento.cli.main import main
from atento.data.store import stores_root
from conftest import CONFIGS


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ATENTO_CACHE", str(tmp_path / "cache"))


def test_prepare_prints_the_store_then_finds_it_and_clean_removes_it(capsys) -> None:
    args = ["prepare", str(CONFIGS / "toy_dates.yaml"), "data.n_train=300"]
    assert main(args) == 0
    first = capsys.readouterr()
    assert first.out.startswith(f"corpus store {stores_root()}/parallel-")
    assert "src 300 rows, tgt 300 rows" in first.out and " kB)" in first.out
    assert main([*args, "--workers", "1"]) == 0
    again = capsys.readouterr().out
    assert again.split(" (")[0] == first.out.split(" (")[0]  # the same store, found
    assert main(["prepare", "--clean"]) == 0
    assert capsys.readouterr().out.startswith(f"removed 1 corpus store(s) from {stores_root()}")
    assert list(stores_root().iterdir()) == []


@pytest.mark.parametrize(("argv", "message"), [
    (["prepare"], "prepare needs a CONFIG file (or --clean)"),
    (["prepare", "missing.yaml"], "config file not found"),
    (["prepare", str(CONFIGS / "toy_dates.yaml"), "--workers", "0"], "--workers must be at least"),
    (["prepare", str(CONFIGS / "toy_dates.yaml"), "--clean"], "--clean takes no config"),
    (["prepare", str(CONFIGS / "sst2_bert.yaml")], "reads its data in memory: no corpus store"),
])  # fmt: skip
def test_prepare_errors_are_one_line(argv, message, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_prepare_a_language_model_text(tmp_path, capsys) -> None:
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat.\n" * 50, encoding="utf-8")  # 1,200 characters
    assert main(["prepare", str(CONFIGS / "shakespeare_char.yaml"), f"data.train={text}"]) == 0
    out = capsys.readouterr().out
    assert f"{stores_root()}/stream-" in out and "train 1,080 tokens, valid 120 tokens" in out
