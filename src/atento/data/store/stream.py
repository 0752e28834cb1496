"""The store of a language model's text: one token stream for training, one for validation.

    source = file_text("input.txt", valid="", valid_fraction=0.1)     # or memory_text(text)
    data = prepare_stream(source, settings, tokenizers=None, workers=4, log=print)
    data.train, data.valid                       # memory-mapped 1-D id arrays; data.valid_chars

The text is read as it is (line ends included; only its UTF-8 is checked, line by line).
A tokenizer that reads line breaks itself (characters; an imported byte-level BPE) encodes
blocks of 64 lines at once: characters give exactly `encode_text`'s ids, a BPE may differ
from encoding the whole text at once only where a block boundary splits a run of whitespace.
Without a validation file the last `valid_fraction` of the characters is validation, as
nanoGPT splits (a first pass counts them). Characters are one id each; SentencePiece encodes
each line of a part and follows it with its EOS `</s>` (the line break), exactly as
`data.text.encode_text` encodes the part's whole text.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atento import faults
from atento.data.lines import DEFAULT_POLICY, LinePolicy, stream_lines
from atento.data.store.arrays import ArrayWriter, token_dtype
from atento.data.store.build import Store, single_side_store
from atento.data.store.encode import BATCH_LINES, encode_batches, encode_text_batch
from atento.data.store.keys import digest_of, file_identity
from atento.data.store.sample import Reservoir, train_tokenizers
from atento.data.tokenizers import Tokenizer
from atento.errors import AtentoError

BLOCK_LINES = 64  # lines a whole-text tokenizer encodes at once

Lines = Callable[[], Iterator[str]]


@dataclass
class TextSource:
    """The training text (and a validation text, or the fraction of it to hold out)."""

    identity: list[dict[str, Any]]
    train: Lines
    valid: Lines | None
    valid_fraction: float
    name: str


def _file_lines(path: str | Path, policy: LinePolicy) -> Lines:
    def lines() -> Iterator[str]:
        for number, line in enumerate(stream_lines(path, policy, raw=True), start=1):
            if "\0" in line:
                raise AtentoError(f"{path}:{number}: NUL byte: a binary file, not text")
            yield line

    return lines


def _memory_lines(text: str) -> Lines:
    def lines() -> Iterator[str]:
        start = 0
        while start < len(text):
            end = text.find("\n", start)
            end = len(text) if end < 0 else end + 1
            yield text[start:end]
            start = end

    return lines


def file_text(train: str | Path, *, valid: str | Path = "", valid_fraction: float,
              policy: LinePolicy = DEFAULT_POLICY) -> TextSource:  # fmt: skip
    """A text file of any size, and a validation file or the fraction held out."""
    ident = [file_identity(train), file_identity(valid) if valid else {"fraction": valid_fraction}]
    return TextSource(ident, _file_lines(train, policy),
                      _file_lines(valid, policy) if valid else None, valid_fraction,
                      str(train))  # fmt: skip


def memory_text(train: str, valid: str | None, *, valid_fraction: float, name: str) -> TextSource:
    """Texts already in memory (the sentences of a labelled file), named by their hash."""
    ident = [{"sha256": hashlib.sha256(t.encode()).hexdigest()} for t in (train, valid or "")]
    ident.append({"fraction": valid_fraction if valid is None else None})
    return TextSource(ident, _memory_lines(train),
                      None if valid is None else _memory_lines(valid), valid_fraction,
                      name)  # fmt: skip


def _parts(source: TextSource, cut: int | None) -> Iterator[tuple[str, str]]:
    """(part, chunk): the train text's chunks up to character `cut` (None: all), then the
    validation text's (or the train text's beyond the cut)."""
    if source.valid is not None:
        yield from (("train", c) for c in source.train())
        yield from (("valid", c) for c in source.valid())
        return
    seen = 0
    for chunk in source.train():
        if seen + len(chunk) <= cut:
            yield "train", chunk
        elif seen >= cut:
            yield "valid", chunk
        else:
            yield "train", chunk[: cut - seen]
            yield "valid", chunk[cut - seen :]
        seen += len(chunk)


def _segments(chunks: Iterator[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    """(part, line) as `part_text.split("\\n")` gives them, part by part."""
    current, tail = None, ""
    for part, chunk in chunks:
        if part != current:
            if current is not None:
                yield current, tail
            current, tail = part, ""
        if chunk.endswith("\n"):
            yield part, tail + chunk[:-1]
            tail = ""
        else:
            tail += chunk
    if current is not None:
        yield current, tail
    if current != "valid":  # an empty validation part still has its one (empty) line
        yield "valid", ""


class StreamData:
    """A language model's store, mapped: `train`, `valid` (1-D ids), tokenizers, counts."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.train = store.arrays("train").tokens
        self.valid = store.arrays("valid").tokens
        self.valid_chars = int(store.manifest["valid_chars"])
        self.tokenizers = store.tokenizers()


def prepare_stream(
    source: TextSource, settings: dict[str, Any], *, tokenizers: dict[str, Tokenizer] | None,
    workers: int, log=print, reuse: str | None = None, verify: bool = False,
) -> StreamData:  # fmt: skip
    """The store of `source` under `settings` (tokenizer, vocab_size, tokenizer_sample, seed):
    found or built (see `prepare_parallel` for `reuse`)."""

    def build(folder: Path) -> dict[str, Any]:
        return _build(folder, source, settings, tokenizers, workers, log)

    return StreamData(single_side_store("stream", source.identity, settings, tokenizers, build,
                                        log=log, reuse=reuse, verify=verify))  # fmt: skip


def _first_pass(source: TextSource, kind: str) -> tuple[int | None, set[str]]:
    """The character cut (None with a validation file) and the alphabet (characters)."""
    chars: set[str] = set()
    total, text = 0, False
    lines = [source.train] + ([source.valid] if source.valid is not None else [])
    for part, read in enumerate(lines):
        for chunk in read():
            total += len(chunk)
            text = text or bool(chunk.strip())
            if kind == "char":
                chars.update(chunk)
        if part == 0 and not text:
            raise AtentoError(f"{source.name}: empty text file")
    cut = None if source.valid is not None else int(total * (1 - source.valid_fraction))
    return cut, chars


def _build(folder, source, settings, tokenizers, workers, log) -> dict[str, Any]:
    start = time.perf_counter()
    kind = settings["tokenizer"] if tokenizers is None else tokenizers["text"].kind
    need_pass = tokenizers is None and kind == "char" or source.valid is None
    cut, chars = _first_pass(source, kind) if need_pass else (None, set())
    if tokenizers is None:
        if kind == "char":
            sides = {"text": ["".join(sorted(chars))]}
        else:
            res = Reservoir(settings["tokenizer_sample"], settings["seed"])
            for part, line in _segments(_parts(source, cut)):
                if part == "train":
                    res.offer(line)
            sides = {"text": res.items}
        tokenizers = train_tokenizers(kind, sides, vocab_size=settings["vocab_size"],
                                      joint=False, directory=folder)  # fmt: skip
    else:
        tokenizers["text"].save(folder, "text")
    trained = time.perf_counter()
    dtype = token_dtype(tokenizers["text"].vocab_size)
    writers = {p: ArrayWriter(folder, p, dtype, rows=False) for p in ("train", "valid")}
    chars = {"train": 0, "valid": 0}
    batches = _batches(source, cut, tokenizers["text"].whole_text, dtype, chars)
    for part, ids in encode_batches(batches, encode_text_batch, tokenizers, workers=workers):
        writers[part].append(ids)
        faults.point("store-build")
    if writers["train"].n_tokens == 0:
        raise AtentoError(f"{source.name}: empty text file")
    return {
        "inputs": source.identity, "tokenizers": {"text": "text"},
        "tokenizer_sha256": digest_of(tokenizers),
        "arrays": {p: w.close() for p, w in writers.items()}, "valid_chars": chars["valid"],
        "workers": workers,
        "seconds": {"tokenizer": round(trained - start, 3),
                    "encode": round(time.perf_counter() - trained, 3)},
    }  # fmt: skip


def _counted(items: Iterator[tuple[str, str]], chars: dict[str, int]):
    for part, chunk in items:
        chars[part] += len(chunk)
        yield part, chunk


def _blocks(chunks: Iterator[tuple[str, str]], lines: int = BLOCK_LINES):
    """(part, text): `lines` consecutive chunks of a part joined, so a tokenizer that reads
    line breaks itself (byte-level BPE merges a run of them) sees text as a whole but for the
    block boundaries (characters: the same ids either way)."""
    current, block = None, []
    for part, chunk in chunks:
        if block and (part != current or len(block) == lines):
            yield current, "".join(block)
            block = []
        current = part
        block.append(chunk)
    if block:
        yield current, "".join(block)


def _batches(source: TextSource, cut: int | None, whole: bool, dtype, chars: dict[str, int]):
    """Batches of (part, texts, eos, dtype): chunks as they come for a tokenizer that reads
    line breaks itself (`whole`: characters), else lines, each + EOS (SentencePiece); each
    part's characters are counted into `chars`."""
    parts = _counted(_parts(source, cut), chars)
    items = _blocks(parts) if whole else _segments(parts)
    eos = not whole
    current, texts = None, []
    for part, text in items:
        if part != current or len(texts) == BATCH_LINES:
            if texts:
                yield current, texts, eos, dtype
            current, texts = part, []
        texts.append(text)
    if texts:
        yield current, texts, eos, dtype
