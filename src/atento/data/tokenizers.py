"""Tokenizers: SentencePiece (unigram), characters and (for captions) lower-cased words, with
the special ids of `vocab` (each tokenizer's `pad_id` .. `mask_id`).

Every tokenizer maps text to ids WITHOUT adding BOS/EOS (batching adds those) and back:

    tok = build_tokenizer("sentencepiece", texts, vocab_size=8000, run_dir=run_dir, name="joint")
    ids = tok.encode("Ein Hund rennt.")       # list[int], no BOS / EOS
    tok.decode(ids)                           # "Ein Hund rennt." (PAD / BOS / EOS dropped)
    load_tokenizer(run_dir, "joint")          # what build_tokenizer saved

`build_tokenizer` is the one way the tasks build a tokenizer from training text: it builds in
memory and writes only into the run directory, when there is one. On disk a tokenizer is
`{name}.json` (its kind, plus the characters for `char`) and, for SentencePiece,
`{name}.model`. For checkpoints, `tok.state()` is a plain dict (bytes for the SentencePiece
model) and `tokenizer_from_state(state)` rebuilds the tokenizer with no files. A classification
run stores its classes the same way, as a `LabelSet` (kind `labels`).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sentencepiece as spm

from atento.data.vocab import (
    BOS_ID,
    EOS_ID,
    N_SPECIAL,
    PAD_ID,
    SPECIAL_PIECES,
    UNK_ID,
    UNK_PIECE,
    Tokenizer,
)
from atento.errors import AtentoError

if TYPE_CHECKING:
    pass

_DROPPED_ON_DECODE = frozenset((PAD_ID, BOS_ID, EOS_ID))
UNK_SURFACE = "\u2047"  # "⁇", what decode writes for UNK (as SentencePiece does)


class CharTokenizer(Tokenizer):
    """One id per character: specials, then the sorted characters seen when building."""

    kind = "char"
    whole_text = True

    def __init__(self, chars: Iterable[str]) -> None:
        self.chars: list[str] = sorted(set(chars))
        if any(len(c) != 1 for c in self.chars):
            raise ValueError("CharTokenizer needs single characters")
        self._index = {c: i + N_SPECIAL for i, c in enumerate(self.chars)}

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> CharTokenizer:
        """Build the vocabulary from every character in `texts`."""
        chars: set[str] = set()
        for t in texts:
            chars.update(t)
        return cls(chars)

    @property
    def vocab_size(self) -> int:
        return N_SPECIAL + len(self.chars)

    def encode(self, text: str) -> list[int]:
        index = self._index
        return [index.get(c, UNK_ID) for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        out = []
        for i in ids:
            i = int(i)
            if i in _DROPPED_ON_DECODE:
                continue
            out.append(
                self.chars[i - N_SPECIAL] if N_SPECIAL <= i < self.vocab_size else UNK_SURFACE
            )
        return "".join(out)

    def pieces(self, text: str) -> list[str]:
        # The characters themselves, unknown ones included: more readable than "<unk>".
        return list(text)

    def id_to_piece(self, i: int) -> str:
        if 0 <= i < N_SPECIAL:
            return SPECIAL_PIECES[i]
        if i < self.vocab_size:
            return self.chars[i - N_SPECIAL]
        return UNK_PIECE

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "chars": "".join(self.chars)}

    def save(self, directory: Path, name: str) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        _write_json(directory / f"{name}.json", self.state())


class WordTokenizer(Tokenizer):
    """Lower-cased whitespace-separated words (captions come tokenised): the specials, then the
    words seen at least `min_count` times when building, most frequent first; others are UNK."""

    kind = "word"

    def __init__(self, words: Iterable[str]) -> None:
        self.words: list[str] = list(words)
        self._index = {w: i + N_SPECIAL for i, w in enumerate(self.words)}

    @classmethod
    def from_texts(cls, texts: Iterable[str], *, min_count: int = 1) -> WordTokenizer:
        """The vocabulary of `texts`: words with at least `min_count` occurrences, sorted by
        count (descending) then alphabetically, so the same texts give the same ids."""
        counts: dict[str, int] = {}
        for t in texts:
            for w in t.lower().split():
                counts[w] = counts.get(w, 0) + 1
        kept = [w for w, n in counts.items() if n >= min_count]
        return cls(sorted(kept, key=lambda w: (-counts[w], w)))

    @property
    def vocab_size(self) -> int:
        return N_SPECIAL + len(self.words)

    def encode(self, text: str) -> list[int]:
        index = self._index
        return [index.get(w, UNK_ID) for w in text.lower().split()]

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(
            self.id_to_piece(int(i)) if int(i) != UNK_ID else UNK_SURFACE
            for i in ids
            if int(i) not in _DROPPED_ON_DECODE
        )

    def pieces(self, text: str) -> list[str]:
        return text.lower().split()

    def id_to_piece(self, i: int) -> str:
        if 0 <= i < N_SPECIAL:
            return SPECIAL_PIECES[i]
        if i < self.vocab_size:
            return self.words[i - N_SPECIAL]
        return UNK_PIECE

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "words": list(self.words)}

    def save(self, directory: Path, name: str) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        _write_json(directory / f"{name}.json", self.state())


class SentencePieceTokenizer(Tokenizer):
    """A SentencePiece model whose pad/unk/bos/eos ids are 0/1/2/3."""

    kind = "sentencepiece"

    def __init__(self, model_proto: bytes) -> None:
        self.model_proto = bytes(model_proto)
        self.sp = spm.SentencePieceProcessor(model_proto=self.model_proto)
        expected = (PAD_ID, UNK_ID, BOS_ID, EOS_ID)
        found = (self.sp.pad_id(), self.sp.unk_id(), self.sp.bos_id(), self.sp.eos_id())
        if found != expected:
            raise AtentoError(f"sentencepiece model has special ids {found}, expected {expected}")

    @classmethod
    def from_texts(cls, texts: Iterable[str], *, vocab_size: int) -> SentencePieceTokenizer:
        """Train a unigram model on `texts`, in memory (no file is written).

        Deterministic for the same texts (no sampling, no shuffling, one thread). The
        vocabulary size is a soft limit (`hard_vocab_limit=False`), so a toy corpus of a few
        sentences trains with a smaller vocabulary instead of failing.
        """
        sentences = [t for t in texts if t.strip()]
        if not sentences:
            raise AtentoError("cannot train a sentencepiece model on empty text")
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=model, model_type="unigram",
            vocab_size=vocab_size, hard_vocab_limit=False, character_coverage=1.0,
            pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
            input_sentence_size=2_000_000, shuffle_input_sentence=False, num_threads=1,
            minloglevel=2,
        )  # fmt: skip
        return cls(model.getvalue())

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text, out_type=int)

    def encode_batch(self, texts: Iterable[str]) -> list[list[int]]:
        return self.sp.encode(list(texts), out_type=int)

    def decode(self, ids: Sequence[int]) -> str:
        return self.sp.decode([int(i) for i in ids if int(i) not in _DROPPED_ON_DECODE])

    def pieces(self, text: str) -> list[str]:
        return self.sp.encode(text, out_type=str)

    def id_to_piece(self, i: int) -> str:
        return self.sp.id_to_piece(int(i))

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "model_proto": self.model_proto}

    def save(self, directory: Path, name: str) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{name}.model").write_bytes(self.model_proto)
        _write_json(directory / f"{name}.json", {"kind": self.kind, "model": f"{name}.model"})


class LabelSet(Tokenizer):
    """The class labels of a classification run, stored with its tokenizers (role `labels`)
    so that a checkpoint alone says what its classes are. Unlike text tokenizers its ids are
    the class indices 0..C-1 (no special ids): `encode(label)` -> [index]."""

    kind = "labels"
    pad_id = unk_id = bos_id = eos_id = mask_id = property(lambda self: None)  # none of them

    def __init__(self, labels: Iterable[str]) -> None:
        self.labels: list[str] = list(labels)
        if not self.labels or len(set(self.labels)) != len(self.labels):
            raise AtentoError("a label set needs distinct labels")
        self._index = {label: i for i, label in enumerate(self.labels)}

    @property
    def vocab_size(self) -> int:
        return len(self.labels)

    def index(self, label: str) -> int | None:
        """The class index of `label`, or None when the set does not hold it."""
        return self._index.get(label)

    def encode(self, text: str) -> list[int]:
        i = self._index.get(text)
        if i is None:
            raise AtentoError(f"unknown label {text!r} (known: {', '.join(self.labels)})")
        return [i]

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(self.labels[int(i)] for i in ids)

    def pieces(self, text: str) -> list[str]:
        return [text]

    def id_to_piece(self, i: int) -> str:
        return self.labels[int(i)]

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "labels": list(self.labels)}

    def save(self, directory: Path, name: str) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        _write_json(directory / f"{name}.json", self.state())


# The tokenizers of imported Hugging Face models: kind -> (module, class), imported on use
# (they need the `tokenizers` library, and atento.hf imports this module).
IMPORTED_KINDS = {
    "hf": ("atento.hf.tokenizer", "HFTokenizer"),
    "marian": ("atento.hf.marian_tokenizer", "MarianTokenizer"),
}


def _imported_class(kind: str) -> Any:
    import importlib

    module, name = IMPORTED_KINDS[kind]
    return getattr(importlib.import_module(module), name)


def tokenizer_from_state(state: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer from `Tokenizer.state()` (as stored in a checkpoint)."""
    kind = state.get("kind")
    if kind == CharTokenizer.kind:
        return CharTokenizer(state["chars"])
    if kind == SentencePieceTokenizer.kind:
        return SentencePieceTokenizer(state["model_proto"])
    if kind == WordTokenizer.kind:
        return WordTokenizer(state["words"])
    if kind == LabelSet.kind:
        return LabelSet(state["labels"])
    if kind in IMPORTED_KINDS:  # an imported model's (atento.hf), imported on use
        return _imported_class(kind).from_state(state)
    raise AtentoError(f"unknown tokenizer kind {kind!r}")


def load_tokenizer(directory: Path, name: str) -> Tokenizer:
    """Read back the tokenizer that `save(directory, name)` wrote, whichever kind it is."""
    path = Path(directory) / f"{name}.json"
    if not path.is_file():
        raise AtentoError(f"tokenizer not found: {path}")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise AtentoError(f"tokenizer file is not valid JSON: {path}") from None
    kind = meta.get("kind") if isinstance(meta, dict) else None
    if kind == CharTokenizer.kind:
        return CharTokenizer(meta.get("chars", ""))
    if kind == WordTokenizer.kind:
        return WordTokenizer(meta.get("words", []))
    if kind == LabelSet.kind and isinstance(meta.get("labels"), list):
        return LabelSet(str(label) for label in meta["labels"])
    if kind == "hf":
        try:
            return tokenizer_from_state(meta)
        except AtentoError as exc:
            raise AtentoError(f"{path}: {exc}") from None
    if kind == SentencePieceTokenizer.kind:
        model_path = Path(directory) / meta.get("model", f"{name}.model")
        if not model_path.is_file():
            raise AtentoError(f"sentencepiece model not found: {model_path}")
        try:
            return SentencePieceTokenizer(model_path.read_bytes())
        except RuntimeError:
            raise AtentoError(f"not a sentencepiece model: {model_path}") from None
    if kind == "marian":
        from atento.hf import marian_tokenizer

        return marian_tokenizer.load(Path(directory), name, meta)
    raise AtentoError(f"unknown tokenizer kind {kind!r} in {path}")


KINDS = ("char", "word", "sentencepiece")


def build_tokenizer(
    kind: str,
    texts: Iterable[str],
    *,
    vocab_size: int = 8000,
    min_count: int = 1,
    run_dir: Path | None,
    name: str,
) -> Tokenizer:
    """A `kind` tokenizer (char | word | sentencepiece) of the training `texts`, saved as `name`
    in `run_dir` when there is one. It is built in memory: nothing is written anywhere else
    (without a run directory, nothing at all). `vocab_size` is SentencePiece's (a soft limit),
    `min_count` the fewest occurrences of a kept word."""
    if kind == "char":
        tok: Tokenizer = CharTokenizer.from_texts(texts)
    elif kind == "word":
        tok = WordTokenizer.from_texts(texts, min_count=min_count)
    elif kind == "sentencepiece":
        tok = SentencePieceTokenizer.from_texts(texts, vocab_size=vocab_size)
    else:
        raise AtentoError(f"unknown tokenizer kind {kind!r} (use {', '.join(KINDS)})")
    if run_dir is not None:
        tok.save(Path(run_dir), name)
    return tok


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
