"""Readers for sentence-classification files, each declaring its format's encoding.

    sst2   UTF-8 TSV: a header `sentence<TAB>label`, then `sentence<TAB>label` per line (the
           GLUE SST-2 layout; the sentence's trailing space is stripped)
    trec   Li and Roth's question classification: `COARSE:fine question text` per line,
           Latin-1 (the original training file has a 0xF0 byte); the label is the coarse class
    text   plain UTF-8 lines, no labels (pretraining text)

    data = read_labelled("train.tsv", "sst2")      # Labelled(sentences, labels, lines)
    for sentence, label, line in iter_labelled("train.tsv", "sst2"): ...  # streamed

Every problem is one `AtentoError` naming the file and line: a missing or empty file, a binary
file, invalid UTF-8 in a UTF-8 format, a TSV line without a label, an empty sentence.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from atento.data.lines import readable_path
from atento.errors import AtentoError

FORMATS = ("sst2", "trec", "text")
LABELLED_FORMATS = ("sst2", "trec")
SST2_HEADER = "sentence\tlabel"


@dataclass
class Labelled:
    """Sentences, their labels (None for `text`) and their line numbers in the file."""

    sentences: list[str]
    labels: list[str] | None
    lines: list[int] = field(default_factory=list)
    name: str = ""

    def __len__(self) -> int:
        return len(self.sentences)


def _raw_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(number, bytes) of each line of `path` (split on "\\n", which is dropped), streamed;
    one-line errors for a missing, empty (only whitespace) or binary file (a NUL byte, naming
    its line). Leading blank lines are held back until the first line with text."""
    path = readable_path(path)
    held: list[tuple[int, bytes]] | None = []
    try:
        with open(path, "rb") as f:
            for number, chunk in enumerate(f, start=1):
                chunk = chunk[:-1] if chunk.endswith(b"\n") else chunk
                if b"\x00" in chunk:
                    raise AtentoError(f"{path}:{number}: NUL byte: a binary file, not text")
                if held is not None:
                    held.append((number, chunk))
                    if not chunk.strip():
                        continue
                    yield from held
                    held = None
                    continue
                yield number, chunk
    except OSError as exc:
        raise AtentoError(f"cannot read {path}: {exc.strerror or exc}") from None
    if held is not None:
        raise AtentoError(f"{path}: empty file")


def _utf8(chunk: bytes, path: Path, number: int) -> str:
    try:
        return chunk.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AtentoError(
            f"{path}:{number}: invalid UTF-8 at byte {exc.start} of the line (the format is UTF-8)"
        ) from None


Example = tuple[str, str | None, int]  # (sentence, label or None, line number)


def _sst2(path: Path) -> Iterator[Example]:
    """A GLUE SST-2 TSV file (module doc). A blank line, a line without a tab or label, or an
    empty sentence is an error naming the line."""
    n = 0
    for number, chunk in _raw_lines(path):
        line = _utf8(chunk, path, number)
        if number == 1:
            header = line.lstrip("\ufeff").rstrip("\r")
            if header.strip() != SST2_HEADER:
                raise AtentoError(
                    f"{path}:1: expected the header 'sentence<TAB>label', got {header[:60]!r}"
                )
            continue
        line = line.rstrip("\r")
        if not line.strip():
            raise AtentoError(f"{path}:{number}: empty line (expected sentence<TAB>label)")
        if "\t" not in line:
            raise AtentoError(f"{path}:{number}: no label (expected sentence<TAB>label)")
        sentence, label = line.rsplit("\t", 1)
        sentence, label = sentence.strip(), label.strip()
        if not label:
            raise AtentoError(f"{path}:{number}: no label (expected sentence<TAB>label)")
        if not sentence:
            raise AtentoError(f"{path}:{number}: empty sentence")
        n += 1
        yield sentence, label, number
    if not n:
        raise AtentoError(f"{path}: no examples after the header")


def _trec(path: Path) -> Iterator[Example]:
    """A Li and Roth file, decoded as Latin-1 (module doc); labels are the coarse classes."""
    for number, chunk in _raw_lines(path):
        line = chunk.decode("latin-1").rstrip("\r")
        if not line.strip():
            raise AtentoError(f"{path}:{number}: empty line (expected LABEL:fine question)")
        head, _, question = line.partition(" ")
        coarse, colon, fine = head.partition(":")
        if not colon or not coarse or not fine:
            raise AtentoError(f"{path}:{number}: no label (expected LABEL:fine question)")
        if not question.strip():
            raise AtentoError(f"{path}:{number}: empty question")
        yield question.strip(), coarse, number


def _text(path: Path) -> Iterator[Example]:
    """Plain UTF-8 lines without labels; blank lines are skipped (pretraining text)."""
    for number, chunk in _raw_lines(path):
        line = _utf8(chunk, path, number).strip()
        if line:
            yield line, None, number


_READERS = {"sst2": _sst2, "trec": _trec, "text": _text}


def iter_labelled(path: str | Path, fmt: str) -> Iterator[Example]:
    """(sentence, label, line number) of each example of `path` in format `fmt` (sst2 | trec |
    text; label None for text), one at a time: a file of any size is never held in memory.
    The errors are those of `read_labelled`, raised when the reader reaches the line."""
    if fmt not in _READERS:
        raise AtentoError(f"unknown data format {fmt!r} (use {', '.join(FORMATS)})")
    return _READERS[fmt](Path(path))


def read_labelled(path: str | Path, fmt: str) -> Labelled:
    """Read `path` in format `fmt` (sst2 | trec | text) into memory."""
    out = Labelled([], None if fmt == "text" else [], [], str(path))
    for sentence, label, number in iter_labelled(path, fmt):
        out.sentences.append(sentence)
        if out.labels is not None:
            out.labels.append(label)
        out.lines.append(number)
    return out


def drop_contained(sentences: list[str]) -> list[str]:
    """The sentences that occur inside no other one (whole words), each once, in their order.

    SST-2's training rows are the treebank's sentences *and* their labelled phrases, so the
    text of ~6,900 sentences is there ~4.7 times over in nested pieces; pretraining on the
    maximal rows alone reads the same text once per epoch, with whole-sentence context."""
    unique = list(dict.fromkeys(sentences))
    kept: list[str] = []  # " sentence " of the rows kept so far, longest first
    by_word: dict[str, list[int]] = {}
    keep: set[str] = set()
    for s in sorted(unique, key=len, reverse=True):
        words = s.split()
        rarest = min(words, key=lambda w: len(by_word.get(w, ())), default="")
        padded = f" {s} "
        if any(padded in kept[k] for k in by_word.get(rarest, ())):
            continue
        for w in set(words):
            by_word.setdefault(w, []).append(len(kept))
        kept.append(padded)
        keep.add(s)
    return [s for s in unique if s in keep]
