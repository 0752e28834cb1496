"""SST-2 and TREC readers: formats, declared encodings and one-line errors naming file and line."""

from __future__ import annotations

from collections import Counter

import pytest

from atento.data.labelled import drop_contained, read_labelled
from atento.errors import AtentoError
from conftest import SHARED_DATA


def _write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_sst2_strips_the_trailing_space_and_keeps_line_numbers(tmp_path) -> None:
    path = _write(tmp_path, "a.tsv", b"sentence\tlabel\nna\xc3\xaff , fine \t1\r\nbad \t0\n")
    data = read_labelled(path, "sst2")
    assert data.sentences == ["na\u00eff , fine", "bad"]
    assert data.labels == ["1", "0"] and data.lines == [2, 3]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", r"a\.tsv: empty file"),
        (b"sentence\tlabel\n", r"a\.tsv: no examples"),
        (b"sentence\tlabel\ngood \t1\nno label here\n", r"a\.tsv:3: no label"),
        (b"sentence\tlabel\ngood \t\n", r"a\.tsv:2: no label"),
        (b"sentence\tlabel\ngood \t1\nbad \xff\t0\n", r"a\.tsv:3: invalid UTF-8"),
        (b"text\tlabel\ngood \t1\n", r"a\.tsv:1: expected the header"),
        (b"sentence\tlabel\n\x00\x01\t1\n", r"a\.tsv:2: NUL byte"),
        (b"sentence\tlabel\ngood \t1\n\nbad \t0\n", r"a\.tsv:3: empty line"),
    ],
)
def test_sst2_bad_input_is_one_line_naming_file_and_line(tmp_path, content, message) -> None:
    with pytest.raises(AtentoError, match=f"/a\\.tsv{message[6:]}"):
        read_labelled(_write(tmp_path, "a.tsv", content), "sst2")


def test_trec_is_latin1_with_coarse_labels(tmp_path) -> None:
    path = _write(tmp_path, "t.label", b"LOC:other What is a sister\xf0city ?\nHUM:ind Who ?\n")
    data = read_labelled(path, "trec")
    assert data.labels == ["LOC", "HUM"]
    assert data.sentences == ["What is a sister\u00f0city ?", "Who ?"]
    with pytest.raises(AtentoError, match=r"t2\.label:2: no label"):
        read_labelled(_write(tmp_path, "t2.label", b"HUM:ind Who ?\nWhat is it ?\n"), "trec")


def test_text_format_rejects_invalid_utf8(tmp_path) -> None:
    with pytest.raises(AtentoError, match=r"x\.txt:2: invalid UTF-8"):
        read_labelled(_write(tmp_path, "x.txt", b"fine\nbad \xc3(\n"), "text")


@pytest.mark.skipif(not (SHARED_DATA / "trec").is_dir(), reason="no shared TREC copy")
def test_the_shared_trec_and_sst2_files_read_with_their_published_counts() -> None:
    trec = read_labelled(SHARED_DATA / "trec" / "train.label", "trec")
    assert len(trec) == 4952
    assert Counter(trec.labels) == {"ABBR": 75, "DESC": 1057, "ENTY": 1142, "HUM": 1121,
                                    "LOC": 756, "NUM": 801}  # fmt: skip
    sst = read_labelled(SHARED_DATA / "sst2" / "valid.tsv", "sst2")
    assert Counter(sst.labels) == {"1": 558, "0": 442}
    assert not any(s.endswith(" ") for s in sst.sentences)


def test_drop_contained_keeps_the_maximal_rows_once_in_order() -> None:
    rows = ["a fine film", "fine", "a fine film", "film is", "the film is dull", "is dull",
            "fine film", "fin", "a fine", "dull ."]  # fmt: skip
    # "fine", "fine film", "a fine" are in "a fine film"; "film is", "is dull" in "the film is
    # dull"; "fin" is part of a word only, "dull ." occurs in no row: both stay
    assert drop_contained(rows) == ["a fine film", "the film is dull", "fin", "dull ."]
    assert drop_contained([]) == [] and drop_contained(["x", "x"]) == ["x"]


@pytest.mark.skipif(not (SHARED_DATA / "sst2").is_dir(), reason="no shared SST-2 copy")
def test_sst2_phrases_are_inside_its_sentences() -> None:
    rows = read_labelled(SHARED_DATA / "sst2" / "train.tsv", "sst2").sentences
    kept = drop_contained(rows)
    assert 6000 < len(kept) < 8000  # the treebank's ~8,500 sentences, less those in valid
    text = "\n".join(kept)
    assert all(r in text for r in rows[:500])  # every row's words are still there
    assert sum(len(r.split()) for r in rows) > 4 * sum(len(r.split()) for r in kept)
