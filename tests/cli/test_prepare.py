"""`atento prepare CONFIG [--workers N]` and `atento prepare --clean`."""

from __future__ import annotations

import json

import pytest

from atento.cli.main import main
from atento.data.store import stores_root
from conftest import CONFIGS, TINY, toy_sentences, write_tsv


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
    (["prepare", str(CONFIGS / "flickr8k_caption.yaml")],
     "reads its data in memory: no corpus store"),
    (["prepare", str(CONFIGS / "sst2_bert.yaml"), "model.init_from=no/such/run"], "no/such/run"),
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


def test_prepare_mlm_and_classify_configs(tmp_path, capsys) -> None:
    train = write_tsv(tmp_path / "train.tsv", toy_sentences(100, 1))
    valid = write_tsv(tmp_path / "valid.tsv", toy_sentences(20, 2))
    mlm = [str(CONFIGS / "sst2_mlm.yaml"), f"data.train={train}", f"data.exclude={valid}",
           "data.vocab_size=60", "data.valid_fraction=0.1"]  # fmt: skip
    assert main(["prepare", *mlm]) == 0
    out = capsys.readouterr().out
    assert f"{stores_root()}/sentences-" in out and "train 90 rows, valid 10 rows" in out
    cls = [str(CONFIGS / "sst2_bert.yaml"), f"data.train={train}", f"data.valid={valid}",
           "data.vocab_size=60", "model.init_from=", "--workers", "2"]  # fmt: skip
    assert main(["prepare", *cls]) == 0
    out = capsys.readouterr().out
    assert "train 100 rows, train_labels 100 values" in out
    assert main(["prepare", *cls]) == 0  # found again, checksums verified
    assert capsys.readouterr().out.split(" (")[0] == out.split(" (")[0]
    assert len(list(stores_root().iterdir())) == 2


def test_prepare_a_classifier_initialised_from_an_mlm_run(mlm_run, toy_data, tmp_path,
                                                          capsys) -> None:  # fmt: skip
    """init_from's tokenizer, used as it is: `atento train` maps the store prepared for it."""
    tiny = [f"model.{k}={v}" for k, v in TINY.items()]
    args = [str(CONFIGS / "sst2_bert.yaml"), f"data.train={toy_data['train']}",
            f"data.valid={toy_data['valid']}", f"model.init_from={mlm_run}", *tiny]  # fmt: skip
    assert main(["prepare", *args]) == 0
    path = capsys.readouterr().out.split()[2]
    run = tmp_path / "run"
    assert main(["train", *args, "train.max_steps=1", "--out", str(run)]) == 0
    assert json.loads((run / "store.json").read_text())["path"] == path
