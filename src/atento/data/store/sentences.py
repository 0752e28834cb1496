"""The store of single sentences (MLM pretraining, classification): each sentence's ids as a
row, and optionally each training sentence's class.

    source = labelled_source("train.tsv", "sst2", labelled=True)   # or a SentenceSource
    data = prepare_sentences(source, settings, tokenizers=None, workers=4, log=print)
    data.train.row(i), data.labels[i], data.classes, data.valid   # rows: TokenArrays

Rows hold the tokenizer's ids alone (no [CLS] / [SEP], never cut): what a task adds around
them and where it cuts them to its model's length is the task's, so one store serves every
model size. Two streaming passes: the first counts the sentences (for the held-out
validation fraction), draws the tokenizer's sample (a seeded reservoir of
`tokenizer_sample` training sentences; while there are no more, all of them in order, so a
small corpus gets exactly the tokenizer it got before the store) or the training part's
alphabet (characters), and collects the classes (the sorted distinct labels of the training
part); the second encodes on `workers` processes. Labels are stored as class indices (int32,
array `train_labels`), the class names in the manifest. A source may yield `(None, None)` for
a line it leaves out (MLM's `data.exclude`): counted in the manifest's `left_out`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from atento import faults
from atento.data.labelled import drop_contained, iter_labelled
from atento.data.store.arrays import ArrayWriter, token_dtype
from atento.data.store.build import Store, single_side_store
from atento.data.store.encode import BATCH_LINES, encode_batches, encode_rows_batch
from atento.data.store.keys import digest_of, file_identity
from atento.data.store.sample import Reservoir, train_tokenizers
from atento.data.tokenizers import Tokenizer
from atento.errors import AtentoError

Examples = Callable[[], Iterator[tuple[str | None, str | None]]]
LABEL_DTYPE = np.dtype("<i4")


@dataclass
class SentenceSource:
    """Where the sentences come from: their identity (for the key) and fresh streams of
    (sentence, label or None) for training and, optionally, validation. Without `valid`, the
    last `valid_fraction` of the training sentences is validation (0: there is none)."""

    identity: list[dict[str, Any]]
    train: Examples
    valid: Examples | None = None
    valid_fraction: float = 0.0
    labelled: bool = False
    name: str = ""

    @property
    def has_valid(self) -> bool:
        return self.valid is not None or self.valid_fraction > 0


def labelled_source(
    train: str | Path, fmt: str, *, labelled: bool = False, exclude: str | Path = "",
    drop_nested: bool = False, valid: str | Path = "", valid_fraction: float = 0.0,
) -> SentenceSource:  # fmt: skip
    """The sentences (and with `labelled` the labels) of a file in `fmt` (`data.labelled`),
    less those of `exclude` (a file in the same format, read into memory: a validation set);
    `drop_nested`: only the sentences inside no other, once (`drop_contained`, unlabelled: the
    distinct sentences are held in memory while the store is prepared). Validation: the sentences of
    `valid` (less the excluded ones) or the last `valid_fraction` of the training ones."""
    ident = [file_identity(train), {"format": fmt, "labelled": labelled,
                                    "drop_contained": drop_nested}]  # fmt: skip
    ident.append(file_identity(exclude) if exclude else {"exclude": None})
    ident.append(file_identity(valid) if valid else {"fraction": valid_fraction})
    excluded: list[frozenset[str]] = []
    kept: list[tuple[int, list[str]]] = []

    def left_out() -> frozenset[str]:
        if not excluded:
            excluded.append(frozenset(s for s, _, _ in iter_labelled(exclude, fmt)) if exclude
                            else frozenset())  # fmt: skip
        return excluded[0]

    def read(path) -> Iterator[tuple[str | None, str | None]]:
        skip = left_out()
        for sentence, label, _ in iter_labelled(path, fmt):
            yield (None, None) if sentence in skip else (sentence, label if labelled else None)

    def train_examples() -> Iterator[tuple[str | None, str | None]]:
        if not drop_nested:
            yield from read(train)
            return
        if not kept:  # (lines left out, the maximal sentences), once for both passes
            rows = [s for s, _ in read(train)]
            kept.append((rows.count(None), drop_contained([s for s in rows if s is not None])))
        skipped, sentences = kept[0]
        yield from [(None, None)] * skipped
        yield from ((s, None) for s in sentences)

    return SentenceSource(ident, train_examples, (lambda: read(valid)) if valid else None,
                          0.0 if valid else valid_fraction, labelled, str(train))  # fmt: skip


class SentenceData:
    """A sentence store, mapped: `train` and `valid` rows (`TokenArrays`; valid None when the
    source has none), `labels` (int32 class indices of the training rows, or None), `classes`
    (their names), `left_out` (per part) and the tokenizers (role `text`)."""

    def __init__(self, store: Store) -> None:
        m = store.manifest
        self.store = store
        self.train = store.arrays("train")
        self.valid = store.arrays("valid") if "valid" in m["arrays"] else None
        self.labels = store.arrays("train_labels").tokens if "train_labels" in m["arrays"] else None
        self.classes: list[str] | None = m.get("classes")
        self.left_out: dict[str, int] = m["left_out"]
        self.tokenizers = store.tokenizers()

    def __len__(self) -> int:
        return len(self.train)


def prepare_sentences(
    source: SentenceSource, settings: dict[str, Any], *,
    tokenizers: dict[str, Tokenizer] | None, workers: int, log=print, reuse: str | None = None,
    verify: bool = False,
) -> SentenceData:  # fmt: skip
    """The store of `source` under `settings` (tokenizer, vocab_size, tokenizer_sample, seed):
    found or built (see `prepare_parallel` for `reuse`); `tokenizers`: {"text": ...} to use
    as it is (keyed by its hash), or None to train one on the sample."""

    def build(folder: Path) -> dict[str, Any]:
        return _build(folder, source, settings, tokenizers, workers, log)

    return SentenceData(single_side_store("sentences", source.identity, settings, tokenizers,
                                          build, log=log, reuse=reuse, verify=verify))  # fmt: skip


@dataclass
class _Census:
    """What the first pass learns: the sentences kept, where validation starts, each
    character's and label's first sentence, the sample, and the lines left out."""

    n: int
    cut: int
    first_char: dict[str, int]
    first_label: dict[str, int]
    sample: list[tuple[int, str]]
    left_out: int


def _census(source: SentenceSource, kind: str, settings: dict[str, Any]) -> _Census:
    res = Reservoir(settings["tokenizer_sample"], settings["seed"]) if kind != "char" else None
    first_char: dict[str, int] = {}
    first_label: dict[str, int] = {}
    n = left_out = 0
    for sentence, label in source.train():
        if sentence is None:
            left_out += 1
            continue
        if res is not None:
            res.offer((n, sentence))
        else:
            for c in set(sentence).difference(first_char):
                first_char[c] = n
        if source.labelled and label not in first_label:
            first_label[label] = n
        n += 1
    cut = n if source.valid is not None else int(n * (1 - source.valid_fraction))
    if cut == 0 or (source.valid is None and source.valid_fraction > 0 and cut == n):
        raise AtentoError(f"{source.name}: too few sentences for training and validation")
    sample = sorted(res.items) if res is not None else []
    return _Census(n, cut, first_char, first_label, sample, left_out)


def _build(folder, source, settings, tokenizers, workers, log) -> dict[str, Any]:
    start = time.perf_counter()
    kind = settings["tokenizer"] if tokenizers is None else tokenizers["text"].kind
    census = _census(source, kind, settings)
    if tokenizers is None:
        if kind == "char":
            text = ["".join(sorted(c for c, i in census.first_char.items() if i < census.cut))]
        else:
            text = [s for i, s in census.sample if i < census.cut]
        tokenizers = train_tokenizers(kind, {"text": text}, vocab_size=settings["vocab_size"],
                                      joint=False, directory=folder)  # fmt: skip
    else:
        tokenizers["text"].save(folder, "text")
    trained = time.perf_counter()
    classes = sorted(label for label, i in census.first_label.items() if i < census.cut)
    dtype = token_dtype(tokenizers["text"].vocab_size)
    parts = ("train", "valid") if source.has_valid else ("train",)
    writers = {p: ArrayWriter(folder, p, dtype, rows=True) for p in parts}
    if source.labelled:
        writers["train_labels"] = ArrayWriter(folder, "train_labels", LABEL_DTYPE, rows=False)
    left_out = {"train": census.left_out, "valid": 0}
    batches = _batches(source, census.cut, {c: i for i, c in enumerate(classes)}, dtype, left_out)
    for part, ids, lengths, labels in encode_batches(batches, encode_rows_batch, tokenizers,
                                                      workers=workers):  # fmt: skip
        writers[part].append(ids, lengths)
        if labels is not None:
            writers["train_labels"].append(labels)
        faults.point("store-build")
    if source.valid is not None and writers["valid"].n_rows == 0:
        raise AtentoError(f"{source.name}: too few sentences for training and validation")
    return {
        "inputs": source.identity, "tokenizers": {"text": "text"},
        "tokenizer_sha256": digest_of(tokenizers),
        "arrays": {p: w.close() for p, w in writers.items()},
        "classes": classes if source.labelled else None, "left_out": left_out,
        "workers": workers,
        "seconds": {"tokenizer": round(trained - start, 3),
                    "encode": round(time.perf_counter() - trained, 3)},
    }  # fmt: skip


def _batches(source, cut: int, index: dict[str, int], dtype, left_out: dict[str, int]):
    """Batches of (part, texts, class indices or None, dtype): the training sentences up to
    `cut`, then validation (the rest, or the validation stream)."""

    def examples():
        n = 0
        for sentence, label in source.train():
            if sentence is not None:
                yield ("train" if n < cut else "valid"), sentence, label
                n += 1
        for sentence, _ in source.valid() if source.valid is not None else ():
            if sentence is None:
                left_out["valid"] += 1
            else:
                yield "valid", sentence, None

    current, texts, labels = None, [], []
    for part, sentence, label in examples():
        if texts and (part != current or len(texts) == BATCH_LINES):
            yield current, texts, _labels(labels, current, source.labelled), dtype
            texts, labels = [], []
        current = part
        texts.append(sentence)
        labels.append(index.get(label, -1) if part == "train" else -1)
    if texts:
        yield current, texts, _labels(labels, current, source.labelled), dtype


def _labels(labels: list[int], part: str, labelled: bool) -> np.ndarray | None:
    return np.asarray(labels, LABEL_DTYPE) if labelled and part == "train" else None
