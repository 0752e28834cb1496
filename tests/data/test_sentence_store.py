"""The sentence store (MLM, classification): rows equal `encode_batch` of the sentences the
old readers gave, labels as class indices, the same bytes with any number of workers, a new
key for every input that changes what it holds, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from atento.data.labelled import read_labelled
from atento.data.store import labelled_source, prepare_sentences, stores_root
from atento.data.store.sentences import _census
from atento.errors import AtentoError
from conftest import toy_sentences, write_tsv

SP = {"tokenizer": "sentencepiece", "vocab_size": 60, "tokenizer_sample": 1_000_000, "seed": 1}
QUIET = {"log": lambda *_: None}


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ATENTO_CACHE", str(tmp_path / "cache"))
    for var in ("LOCAL_RANK", "WORLD_SIZE", "ATENTO_FAULT"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "cache"


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    return {"train": write_tsv(tmp_path / "train.tsv", toy_sentences(120, 1)),
            "exclude": write_tsv(tmp_path / "ex.tsv", toy_sentences(120, 1)[5:40:3])}  # fmt: skip


def _rows(arrays) -> list[list[int]]:
    return [arrays.row(i).tolist() for i in range(len(arrays))]


def test_rows_and_labels_equal_the_in_memory_readers(files) -> None:
    data = prepare_sentences(labelled_source(files["train"], "sst2", labelled=True), SP,
                             tokenizers=None, workers=1, **QUIET)  # fmt: skip
    old = read_labelled(files["train"], "sst2")
    tok = data.tokenizers["text"]
    assert _rows(data.train) == tok.encode_batch(old.sentences)
    assert data.classes == ["0", "1"] and data.labels.dtype == np.int32
    assert [data.classes[i] for i in data.labels] == old.labels
    assert data.valid is None and data.left_out == {"train": 0, "valid": 0}


def test_mlm_parts_exclusion_and_workers(files, cache) -> None:
    source = labelled_source(files["train"], "sst2", exclude=files["exclude"], valid_fraction=0.1)
    one = prepare_sentences(source, SP, tokenizers=None, workers=1, **QUIET)
    excluded = set(read_labelled(files["exclude"], "sst2").sentences)
    kept = [s for s in read_labelled(files["train"], "sst2").sentences if s not in excluded]
    cut = int(len(kept) * 0.9)
    tok = one.tokenizers["text"]
    assert _rows(one.train) == tok.encode_batch(kept[:cut])
    assert _rows(one.valid) == tok.encode_batch(kept[cut:])
    assert one.left_out["train"] == 120 - len(kept) > 0 and one.labels is None
    files_one = {p.name: p.read_bytes() for p in one.store.path.iterdir()}
    for p in one.store.path.iterdir():
        p.unlink()
    one.store.path.rmdir()
    two = prepare_sentences(source, SP, tokenizers=None, workers=2, **QUIET)  # the same bytes
    assert two.store.key == one.store.key
    files_two = {p.name: p.read_bytes() for p in two.store.path.iterdir()}
    assert {k: v for k, v in files_two.items() if k != "manifest.json"} == {
        k: v for k, v in files_one.items() if k != "manifest.json"
    }


def test_every_input_that_changes_the_rows_changes_the_key(files, tmp_path) -> None:
    train, ex = files["train"], files["exclude"]
    valid = write_tsv(tmp_path / "valid.tsv", toy_sentences(10, 3))
    sources = [
        labelled_source(train, "sst2", valid_fraction=0.1),
        labelled_source(train, "sst2", valid_fraction=0.2),
        labelled_source(train, "sst2", exclude=ex, valid_fraction=0.1),
        labelled_source(train, "sst2", drop_nested=True, valid_fraction=0.1),
        labelled_source(train, "sst2", valid=valid),
        labelled_source(train, "sst2", labelled=True),
    ]
    keys = {prepare_sentences(s, SP, tokenizers=None, workers=1, **QUIET).store.key
            for s in sources}  # fmt: skip
    assert len(keys) == len(sources) == len(list(stores_root().iterdir()))
    write_tsv(ex, toy_sentences(120, 1)[5:41:3])  # an edited exclude file: another store
    edited = labelled_source(train, "sst2", exclude=ex, valid_fraction=0.1)
    changed = prepare_sentences(edited, SP, tokenizers=None, workers=1, **QUIET)
    assert changed.store.key not in keys


def test_the_sample_and_alphabet_are_the_training_parts(files) -> None:
    source = labelled_source(files["train"], "sst2", valid_fraction=0.25)
    small = _census(source, "sentencepiece", {"tokenizer_sample": 1000, "seed": 1})
    sentences = read_labelled(files["train"], "sst2").sentences
    assert small.n == 120 and small.cut == 90 and small.sample == list(enumerate(sentences))
    drawn = _census(source, "sentencepiece", {"tokenizer_sample": 30, "seed": 1})
    assert len(drawn.sample) == 30 and len({i for i, _ in drawn.sample}) == 30
    assert all(sentences[i] == s for i, s in drawn.sample)
    chars = _census(source, "char", {"tokenizer_sample": 30, "seed": 1}).first_char
    assert {c for c, i in chars.items() if i < 90} == set("".join(sentences[:90]))


def test_bad_input_is_one_line(tmp_path, files) -> None:
    header_only = tmp_path / "h.tsv"
    header_only.write_text("sentence\tlabel\n", encoding="utf-8")
    with pytest.raises(AtentoError, match=r"h\.tsv: no examples after the header"):
        prepare_sentences(labelled_source(header_only, "sst2"), SP, tokenizers=None, workers=1,
                          **QUIET)  # fmt: skip
    everything = labelled_source(files["train"], "sst2", exclude=files["train"],
                                 valid_fraction=0.1)  # fmt: skip
    with pytest.raises(AtentoError, match="too few sentences for training and validation"):
        prepare_sentences(everything, SP, tokenizers=None, workers=1, **QUIET)
    assert not any(p.name.startswith(".tmp-") for p in stores_root().iterdir())
