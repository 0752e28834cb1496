"""Multi30k: local files, argument checks, and the download path (never the real network)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from atento.data import multi30k
from atento.data.multi30k import load_multi30k, multi30k_files
from atento.data.parallel import read_lines
from atento.errors import AtentoError

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "multi30k"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="shared Multi30k copy absent")


@needs_shared
@pytest.mark.parametrize(
    ("split", "count"), [("train", 29000), ("val", 1014), ("test_2016_flickr", 1000)]
)
def test_local_files_line_counts(split: str, count: int) -> None:
    src, tgt = multi30k_files(split, "fr", "en", SHARED)
    assert src == SHARED / f"{split}.fr.gz" and tgt == SHARED / f"{split}.en.gz"
    assert len(read_lines(src)) == count == len(read_lines(tgt))
    de, _ = multi30k_files(split, "de", "en", str(SHARED))
    assert de.is_file()


@needs_shared
def test_load_val_pairs() -> None:
    pairs = load_multi30k("valid", "de", "en", SHARED)  # alias of val
    assert len(pairs) == 1014
    assert all(s and t for s, t in pairs)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(AtentoError, match="unknown language 'cs'"):
        multi30k_files("train", "cs", "en", tmp_path)
    with pytest.raises(AtentoError, match="unknown split"):
        multi30k_files("test_2017_flickr", "fr", "en", tmp_path)
    with pytest.raises(AtentoError, match="both 'en'"):
        multi30k_files("train", "en", "en", tmp_path)
    with pytest.raises(AtentoError, match="file not found"):
        multi30k_files("train", "fr", "en", tmp_path)  # empty directory
    with pytest.raises(AtentoError, match="directory not found"):
        multi30k_files("train", "fr", "en", tmp_path / "missing")


def _fake_fetch(calls: list[str]):
    def fetch(url: str, timeout: float = 60.0) -> bytes:
        calls.append(url)
        lang = url.rsplit(".", 2)[-2]
        return gzip.compress(f"line one {lang}\nline two {lang}\n".encode())

    return fetch


def test_download_once_into_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATENTO_CACHE", str(tmp_path / "cache"))
    calls: list[str] = []
    monkeypatch.setattr(multi30k, "fetch_url", _fake_fetch(calls))
    src, tgt = multi30k_files("val", "fr", "en", None)
    root = tmp_path / "cache" / "multi30k"
    assert (src, tgt) == (root / "val.fr.gz", root / "val.en.gz")
    assert calls == [f"{multi30k.BASE_URL}/val.fr.gz", f"{multi30k.BASE_URL}/val.en.gz"]
    assert calls[0] == (
        "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/val.fr.gz"
    )
    assert read_lines(src) == ["line one fr", "line two fr"]
    assert sorted(p.name for p in root.iterdir()) == ["val.en.gz", "val.fr.gz"]  # no temp left
    assert load_multi30k("val", "fr", "en", "") == [
        ("line one fr", "line one en"),
        ("line two fr", "line two en"),
    ]
    assert len(calls) == 2  # second use read the cache


def test_download_failure_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATENTO_CACHE", str(tmp_path))

    def offline(url: str, timeout: float = 60.0) -> bytes:
        raise OSError("network is unreachable")

    monkeypatch.setattr(multi30k, "fetch_url", offline)
    with pytest.raises(AtentoError, match="data.dir") as info:
        multi30k_files("train", "de", "en", None)
    assert "\n" not in str(info.value)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # nothing half-written

    monkeypatch.setattr(multi30k, "fetch_url", lambda url, timeout=60.0: b"<html>404</html>")
    with pytest.raises(AtentoError, match="not a gzip file"):
        multi30k_files("train", "de", "en", None)
