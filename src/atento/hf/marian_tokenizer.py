"""The tokenizer of a Marian (opus-mt) model: what transformers' `MarianTokenizer` does.

A Marian directory holds two SentencePiece models (`source.spm`, `target.spm`) that segment
the text of each side, and one `vocab.json` that numbers the pieces of both (a shared
vocabulary: the ids of the model's one embedding matrix). SentencePiece's own ids are never
used; a piece that `vocab.json` does not hold is `<unk>`. So each side is one atento tokenizer
(kind `marian`, roles `src` and `tgt`): its SentencePiece model for segmentation and the
shared vocabulary for the ids.

    encode: a leading language code `>>xx<<` is kept as one piece (multilingual targets),
            the rest is SentencePiece's pieces, each looked up in the vocabulary
    decode: EOS and PAD dropped, UNK written as "⁇" (atento's convention; transformers'
            `skip_special_tokens` drops it), the rest joined by SentencePiece

The special ids are the model's: EOS `</s>` (0 in opus-mt), UNK `<unk>`, PAD `<pad>` (the last
id) and, as the decoder's first input, `decoder_start_token_id` (= PAD in every opus-mt model),
which atento's decoder reads as its BOS. There is no [MASK].
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import sentencepiece as spm

from atento.data.vocab import Tokenizer
from atento.errors import AtentoError
from atento.hf.jsonfile import read_json_object

KIND = "marian"
UNK_SURFACE = "\u2047"  # "⁇", as atento's other tokenizers decode UNK


class MarianTokenizer(Tokenizer):
    """One side of a Marian model: `model_proto` (that side's SentencePiece model), `vocab`
    (piece -> id, shared by both sides), and the special ids (`bos` = the decoder's start)."""

    kind = KIND

    def __init__(
        self, model_proto: bytes, vocab: Mapping[str, int], *, eos: int, unk: int, pad: int,
        bos: int | None = None, name: str = "marian",
    ) -> None:  # fmt: skip
        self.model_proto = bytes(model_proto)
        try:
            self.sp = spm.SentencePieceProcessor(model_proto=self.model_proto)
        except RuntimeError:
            raise AtentoError(f"{name}: not a SentencePiece model") from None
        self.vocab = {str(p): int(i) for p, i in vocab.items()}
        ids = sorted(self.vocab.values())
        if ids != list(range(len(ids))):
            raise AtentoError(f"{name}: the vocabulary's ids are not 0..{len(ids) - 1}")
        self.pieces_by_id = [""] * len(ids)
        for piece, i in self.vocab.items():
            self.pieces_by_id[i] = piece
        for what, i in (("eos", eos), ("unk", unk), ("pad", pad), ("bos", bos)):
            if i is not None and not 0 <= i < len(ids):
                top = len(ids) - 1
                raise AtentoError(f"{name}: {what} id {i} is outside the vocabulary (0..{top})")
        self._eos, self._unk, self._pad = eos, unk, pad
        self._bos = pad if bos is None else bos
        self._dropped = frozenset((eos, pad, self._bos))

    @classmethod
    def from_files(
        cls, spm_path: Path, vocab_path: Path, *, specials: Mapping[str, int | None]
    ) -> MarianTokenizer:
        """Read `spm_path` and `vocab_path` (a Hugging Face Marian directory's files);
        `specials` gives eos / unk / pad / bos ids (None: looked up by piece)."""
        missing = "not found (a Marian model directory has it)"
        if not spm_path.is_file():
            raise AtentoError(f"{spm_path}: {missing}")
        vocab = read_json_object(vocab_path, missing=missing)
        if not all(isinstance(i, int) for i in vocab.values()):
            raise AtentoError(f"{vocab_path}: not a JSON object of piece -> id")
        ids = {}
        for what, piece in (("eos", "</s>"), ("unk", "<unk>"), ("pad", "<pad>")):
            i = specials.get(what)
            if i is None:
                if piece not in vocab:
                    raise AtentoError(f"{vocab_path}: holds no {piece} piece")
                i = vocab[piece]
            ids[what] = i
        return cls(spm_path.read_bytes(), vocab, **ids, bos=specials.get("bos"),
                   name=str(spm_path))  # fmt: skip

    # special ids: the model's, not atento's PAD 0 / UNK 1 / BOS 2 / EOS 3
    @property
    def pad_id(self) -> int:
        return self._pad

    @property
    def unk_id(self) -> int:
        return self._unk

    @property
    def bos_id(self) -> int:
        return self._bos

    @property
    def eos_id(self) -> int:
        return self._eos

    @property
    def mask_id(self) -> None:
        return None

    @property
    def vocab_size(self) -> int:
        return len(self.pieces_by_id)

    def pieces(self, text: str) -> list[str]:
        """Pieces as transformers' `_tokenize`: a leading `>>xx<<` code, then SentencePiece's."""
        code: list[str] = []
        if text.startswith(">>") and (end := text.find("<<")) != -1:
            code, text = [text[: end + 2]], text[end + 2 :]
        return code + self.sp.encode(text, out_type=str)

    def encode(self, text: str) -> list[int]:
        vocab, unk = self.vocab, self._unk
        return [vocab.get(p, unk) for p in self.pieces(text)]

    def encode_batch(self, texts: Iterable[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: Sequence[int]) -> str:
        n, pieces = len(self.pieces_by_id), []
        for i in ids:
            i = int(i)
            if i not in self._dropped:
                unknown = i == self._unk or not 0 <= i < n
                pieces.append(UNK_SURFACE if unknown else self.pieces_by_id[i])
        return self.sp.decode_pieces(pieces).replace("\u2581", " ").strip()

    def id_to_piece(self, i: int) -> str:
        i = int(i)
        return self.pieces_by_id[i] if 0 <= i < len(self.pieces_by_id) else "<unk>"

    def state(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "model_proto": self.model_proto, "pieces": list(self.pieces_by_id),
            "eos": self._eos, "unk": self._unk, "pad": self._pad, "bos": self._bos,
        }  # fmt: skip

    @classmethod
    def from_state(cls, state: Mapping[str, Any], name: str = "marian") -> MarianTokenizer:
        """The tokenizer `state()` describes (a checkpoint's copy or `{name}.json` + `.spm`)."""
        try:
            vocab = {p: i for i, p in enumerate(state["pieces"])}
            return cls(state["model_proto"], vocab, eos=int(state["eos"]), unk=int(state["unk"]),
                       pad=int(state["pad"]), bos=int(state["bos"]), name=name)  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise AtentoError(f"{name}: not a marian tokenizer ({exc!r})") from None

    def save(self, directory: Path, name: str) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{name}.spm").write_bytes(self.model_proto)
        meta = {k: v for k, v in self.state().items() if k != "model_proto"}
        meta["model"] = f"{name}.spm"
        text = json.dumps(meta, ensure_ascii=False, indent=1)
        (directory / f"{name}.json").write_text(text + "\n", encoding="utf-8")


def load(directory: Path, name: str, meta: Mapping[str, Any]) -> MarianTokenizer:
    """What `save(directory, name)` wrote, given its `{name}.json` already read as `meta`."""
    model_path = Path(directory) / str(meta.get("model", f"{name}.spm"))
    if not model_path.is_file():
        raise AtentoError(f"sentencepiece model not found: {model_path}")
    return MarianTokenizer.from_state({**meta, "model_proto": model_path.read_bytes()},
                                      name=str(model_path))  # fmt: skip
