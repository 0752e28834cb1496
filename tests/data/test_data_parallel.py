"""Reading line-aligned files (plain and gzip) and encoding / filtering pairs."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from atento.data.parallel import encode_pairs, read_lines, read_parallel
from atento.data.tokenizers import CharTokenizer
from atento.errors import AtentoError


def test_read_plain_and_gzip_alike(tmp_path: Path) -> None:
    text = "Un chien court.  \nÉté à Noël\n\nfin\t\n"
    (tmp_path / "a.txt").write_text(text, encoding="utf-8")
    with gzip.open(tmp_path / "a.txt.gz", "wt", encoding="utf-8") as f:
        f.write(text)
    expected = ["Un chien court.", "Été à Noël", "", "fin"]
    assert read_lines(tmp_path / "a.txt") == expected
    assert read_lines(tmp_path / "a.txt.gz") == expected
    (tmp_path / "b.txt").write_text("no newline at end", encoding="utf-8")
    assert read_lines(tmp_path / "b.txt") == ["no newline at end"]


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.fr"
    with pytest.raises(AtentoError, match=f"file not found: {missing}"):
        read_lines(missing)


def test_read_parallel_pairs_and_mismatch(tmp_path: Path) -> None:
    src, tgt = tmp_path / "train.fr", tmp_path / "train.en"
    src.write_text("un\ndeux\ntrois\n", encoding="utf-8")
    tgt.write_text("one\ntwo\n", encoding="utf-8")
    with pytest.raises(AtentoError) as info:
        read_parallel(src, tgt)
    msg = str(info.value)
    assert str(src) in msg and str(tgt) in msg and "3" in msg and "2" in msg
    assert "\n" not in msg
    tgt.write_text("one\ntwo\nthree\n", encoding="utf-8")
    assert read_parallel(src, tgt) == [("un", "one"), ("deux", "two"), ("trois", "three")]


def test_encode_pairs_drops_empty_and_long() -> None:
    tok = CharTokenizer.from_texts(["abcdefgh "])
    pairs = [
        ("ab", "cd"),  # kept
        ("", "cd"),  # empty source
        ("ab", ""),  # empty target
        ("abcdef", "a"),  # source too long (6 > 5)
        ("a", "abcdefg"),  # target too long
        ("abcde", "abcde"),  # exactly max_len: kept
    ]
    encoded, dropped = encode_pairs(pairs, tok, tok, max_len=5)
    assert dropped == 4
    assert encoded == [
        (tok.encode("ab"), tok.encode("cd")),
        (tok.encode("abcde"), tok.encode("abcde")),
    ]
    encoded, dropped = encode_pairs(pairs, tok, tok, max_len=0)  # no length limit
    assert dropped == 2 and len(encoded) == 4
