"""Readers for sentence-classification files, each declaring its format's encoding.

    sst2   UTF-8 TSV: a header `sentence<TAB>label`, then `sentence<TAB>label` per line (the
           GLUE SST-2 layout; the sentence's trailing space is stripped)
    trec   Li and Roth's question classification: `COARSE:fine question text` per line,
           Latin-1 (the original training file has a 0xF0 byte); the label is the coarse class
    text   plain UTF-8 lines, no labels (pretraining text)

    data = read_labelled("train.tsv", "sst2")      # Labelled(sentences, labels, lines)

Every problem is one `AtentoError` naming the file and line: a missing or empty file, a binary
file, invalid UTF-8 in a UTF-8 format, a TSV line without a label, an empty sentence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from atento.data.lines import text_file_bytes
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


def _raw_lines(path: Path) -> list[bytes]:
    lines = text_file_bytes(path).split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def _utf8(chunk: bytes, path: Path, number: int) -> str:
    try:
        return chunk.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AtentoError(
            f"{path}:{number}: invalid UTF-8 at byte {exc.start} of the line (the format is UTF-8)"
        ) from None


def read_sst2(path: str | Path) -> Labelled:
    """A GLUE SST-2 TSV file (module doc). A blank line, a line without a tab or label, or an
    empty sentence is an error naming the line."""
    path = Path(path)
    raw = _raw_lines(path)
    header = _utf8(raw[0], path, 1).lstrip("\ufeff").rstrip("\r")
    if header.strip() != SST2_HEADER:
        raise AtentoError(
            f"{path}:1: expected the header 'sentence<TAB>label', got {header[:60]!r}"
        )
    out = Labelled([], [], [], str(path))
    for number, chunk in enumerate(raw[1:], start=2):
        line = _utf8(chunk, path, number).rstrip("\r")
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
        out.sentences.append(sentence)
        out.labels.append(label)
        out.lines.append(number)
    if not out.sentences:
        raise AtentoError(f"{path}: no examples after the header")
    return out


def read_trec(path: str | Path) -> Labelled:
    """A Li and Roth file, decoded as Latin-1 (module doc); labels are the coarse classes."""
    path = Path(path)
    out = Labelled([], [], [], str(path))
    for number, chunk in enumerate(_raw_lines(path), start=1):
        line = chunk.decode("latin-1").rstrip("\r")
        if not line.strip():
            raise AtentoError(f"{path}:{number}: empty line (expected LABEL:fine question)")
        head, _, question = line.partition(" ")
        coarse, colon, fine = head.partition(":")
        if not colon or not coarse or not fine:
            raise AtentoError(f"{path}:{number}: no label (expected LABEL:fine question)")
        if not question.strip():
            raise AtentoError(f"{path}:{number}: empty question")
        out.sentences.append(question.strip())
        out.labels.append(coarse)
        out.lines.append(number)
    return out


def read_text(path: str | Path) -> Labelled:
    """Plain UTF-8 lines without labels; blank lines are skipped (pretraining text)."""
    path = Path(path)
    out = Labelled([], None, [], str(path))
    for number, chunk in enumerate(_raw_lines(path), start=1):
        line = _utf8(chunk, path, number).strip()
        if line:
            out.sentences.append(line)
            out.lines.append(number)
    return out


def read_labelled(path: str | Path, fmt: str) -> Labelled:
    """Read `path` in format `fmt` (sst2 | trec | text)."""
    if fmt == "sst2":
        return read_sst2(path)
    if fmt == "trec":
        return read_trec(path)
    if fmt == "text":
        return read_text(path)
    raise AtentoError(f"unknown data format {fmt!r} (use {', '.join(FORMATS)})")


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
