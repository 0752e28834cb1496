"""The tokenizer of an imported Hugging Face model (`kind: hf`), through the `tokenizers` library.

A model directory holds either `tokenizer.json` (the library's own format: normaliser,
pre-tokenizer, model, decoder, added tokens), or the older files many published directories
still have, which are rebuilt here with the library's own components (no hand-written BPE):
- `vocab.txt` (BERT): WordPiece with BERT's normaliser (lower-casing and accent stripping as
  `tokenizer_config.json`'s `do_lower_case` / `strip_accents` say) and pre-tokenizer;
- `vocab.json` + `merges.txt` (GPT-2): byte-level BPE, GPT-2's pre-tokenizer and decoder.

The special ids come from the model's tokenizer files (`tokenizer_config.json`,
`special_tokens_map.json`: `bos_token`, `cls_token`, ...), else the family's defaults; which of
them plays atento's BOS / EOS / PAD / UNK / [MASK] is the family's choice (`ROLES`): GPT-2's
`<|endoftext|>` is both BOS and EOS, and it has no PAD (`pad_id` None: the searchers fill with
EOS, masks tell padding) and no UNK (byte-level BPE has no unknown pieces); BERT's [CLS] is
BOS, [SEP] EOS, and [PAD], [UNK], [MASK] are ids of its vocabulary (so `embedding_rows` =
`vocab_size`, no extra row).

On disk and in checkpoints the tokenizer is one JSON file, `{name}.json`: its kind, the
special ids, the model's vocabulary size and the library's `tokenizer.json` text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer as Backend
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors

from atento.data.vocab import UNK_PIECE, Tokenizer
from atento.errors import AtentoError
from atento.hf.jsonfile import read_json_object

SPECIALS = ("pad", "unk", "bos", "eos", "mask")
Named = dict[str, tuple[str, "str | None", bool]]  # role -> (settings key, token, named there)
# family -> atento's role -> the tokenizer_config.json key that names its token, and defaults
ROLES: dict[str, dict[str, tuple[str, str | None]]] = {
    "gpt2": {
        "bos": ("bos_token", "<|endoftext|>"), "eos": ("eos_token", "<|endoftext|>"),
        "unk": ("unk_token", "<|endoftext|>"), "pad": ("pad_token", None),
    },
    "bert": {
        "bos": ("cls_token", "[CLS]"), "eos": ("sep_token", "[SEP]"),
        "pad": ("pad_token", "[PAD]"), "unk": ("unk_token", "[UNK]"),
        "mask": ("mask_token", "[MASK]"),
    },
}  # fmt: skip


class HFTokenizer(Tokenizer):
    """A `tokenizers.Tokenizer` with the special ids of its model (module doc).

    `size` is the model's vocabulary (embedding rows), at least the tokenizer's own ids.
    `encode` adds no special tokens (atento's tasks add BOS / EOS); `decode` drops PAD, BOS and
    EOS and decodes the rest with the library's decoder."""

    kind = "hf"

    def __init__(self, tokenizer_json: str, *, specials: dict[str, int | None], size: int) -> None:
        self.tokenizer_json = tokenizer_json
        self.backend = Backend.from_str(tokenizer_json)
        self.backend.no_truncation()
        self.backend.no_padding()
        self.specials = {role: specials.get(role) for role in SPECIALS}
        self.size = int(size)
        own = self.backend.get_vocab_size(with_added_tokens=True)
        if own > self.size:
            raise ValueError(f"the tokenizer has {own} ids, the model {self.size}")
        self._dropped = frozenset(
            i for i in (self.pad_id, self.bos_id, self.eos_id) if i is not None
        )
        # byte-level BPE encodes line breaks (and every byte) itself
        self.whole_text = isinstance(self.backend.pre_tokenizer, pre_tokenizers.ByteLevel)

    # ------------------------------------------------------------------ special ids
    pad_id = property(lambda self: self.specials["pad"])
    unk_id = property(lambda self: self.specials["unk"])
    bos_id = property(lambda self: self.specials["bos"])
    eos_id = property(lambda self: self.specials["eos"])
    mask_id = property(lambda self: self.specials["mask"])

    @property
    def regular_ids(self) -> range:
        """Ids of ordinary pieces: after the highest special id (BERT's [unused] ids and the
        specials sit first in its vocabulary)."""
        taken = [i for i in self.specials.values() if i is not None]
        return range(max(taken, default=-1) + 1, self.backend.get_vocab_size())

    @property
    def vocab_size(self) -> int:
        return self.size

    # ------------------------------------------------------------------ text <-> ids
    def encode(self, text: str) -> list[int]:
        return self.backend.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Iterable[str]) -> list[list[int]]:
        batch = self.backend.encode_batch(list(texts), add_special_tokens=False)
        return [e.ids for e in batch]

    def decode(self, ids: Sequence[int]) -> str:
        kept = [int(i) for i in ids if int(i) not in self._dropped]
        return self.backend.decode(kept, skip_special_tokens=False)

    def pieces(self, text: str) -> list[str]:
        return self.backend.encode(text, add_special_tokens=False).tokens

    def id_to_piece(self, i: int) -> str:
        piece = self.backend.id_to_token(int(i))
        return UNK_PIECE if piece is None else piece

    # ------------------------------------------------------------------ storage
    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "specials": dict(self.specials), "size": self.size,
                "tokenizer": self.tokenizer_json}  # fmt: skip

    def save(self, directory: Path, name: str) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.state(), ensure_ascii=False, indent=1) + "\n"
        (directory / f"{name}.json").write_text(text, encoding="utf-8")

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> HFTokenizer:
        """What `state()` (or the file `save` wrote) holds; AtentoError when it is not one."""
        try:
            return cls(str(state["tokenizer"]), specials=dict(state["specials"]),
                       size=int(state["size"]))  # fmt: skip
        except Exception as exc:  # a missing key, a wrong type, the library's own errors
            raise AtentoError(f"not a readable hf tokenizer state ({exc})") from None


# ---------------------------------------------------------------------- a model directory
def read_tokenizer(model_dir: Path, family: str, config: dict[str, Any]) -> HFTokenizer:
    """The tokenizer of `model_dir` for a `family` model whose config.json is `config`: from
    tokenizer.json, else vocab.txt (WordPiece) or vocab.json + merges.txt (byte-level BPE).
    AtentoError naming the file when none is there, one is unreadable, or it does not match
    the model's vocabulary size."""
    settings = _read_json(model_dir / "tokenizer_config.json")
    settings = {**_read_json(model_dir / "special_tokens_map.json"), **settings}
    tokens = _special_tokens(family, settings)
    path = model_dir / "tokenizer.json"
    if path.is_file():
        try:
            backend = Backend.from_file(str(path))
        except Exception as exc:  # the library raises its own Exception type
            raise AtentoError(f"{path}: not a readable tokenizer.json ({exc})") from None
    elif (model_dir / "vocab.txt").is_file():
        path = model_dir / "vocab.txt"
        backend = _wordpiece(path, settings, tokens)
    elif (model_dir / "vocab.json").is_file() and (model_dir / "merges.txt").is_file():
        path = model_dir / "vocab.json"
        backend = _byte_level_bpe(path, model_dir / "merges.txt", settings, tokens)
    else:
        raise AtentoError(
            f"{model_dir}: no tokenizer files (tokenizer.json, vocab.txt, or vocab.json + "
            "merges.txt)"
        )
    specials = _special_ids(backend, tokens, path)
    if specials.get("unk") is not None and specials["unk"] == specials.get("eos"):
        # GPT-2 names its one boundary token for every role; byte-level BPE never needs an
        # unknown piece, and banning UNK (search.ban_unk) must not ban the EOS
        specials["unk"] = None
    size = int(config.get("vocab_size", 0))
    own = backend.get_vocab_size(with_added_tokens=True)
    if own != size:
        raise AtentoError(
            f"{path}: the tokenizer has {own} ids but config.json's vocab_size is {size} "
            "(a tokenizer of another model?)"
        )
    return HFTokenizer(backend.to_str(), specials=specials, size=size)


def _read_json(path: Path) -> dict[str, Any]:
    """A tokenizer settings file, {} where the directory has none."""
    return read_json_object(path) or {}


def _token(value: Any) -> str | None:
    """A special token as tokenizer_config.json writes it: a string or {"content": ...}."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _special_tokens(family: str, settings: dict[str, Any]) -> Named:
    """atento's special roles -> (the settings key, its token, whether the settings named it)
    by the family's ROLES: the tokenizer's own settings first, else the family's default."""
    out = {}
    for role, (key, default) in ROLES[family].items():
        named = _token(settings.get(key))
        out[role] = (key, named or default, named is not None)
    return out


def _special_ids(backend: Backend, tokens: Named, path: Path) -> dict[str, int | None]:
    """The roles' ids in `backend`; a token the settings name that the vocabulary lacks is an
    error naming the file (a default that is absent is None: the model has no such token)."""
    ids: dict[str, int | None] = {}
    for role, (key, token, named) in tokens.items():
        i = None if token is None else backend.token_to_id(token)
        if i is None and named:
            raise AtentoError(f"{path}: the {key} {token!r} is not in the vocabulary")
        ids[role] = i
    return ids


def _mark_special(backend: Backend, tokens: Named) -> None:
    """Make the special tokens ([CLS], <|endoftext|>, ...) added special tokens, as the
    library's own converters do, so that text holding them is never split into pieces."""
    present = {t for _, t, _ in tokens.values() if t and backend.token_to_id(t) is not None}
    backend.add_special_tokens(sorted(present))


def _wordpiece(vocab: Path, settings: dict[str, Any], tokens: Named) -> Backend:
    """BERT's tokenizer from vocab.txt (what the library's BertTokenizerFast converts to)."""
    unk = tokens.get("unk", ("", "[UNK]", False))[1] or "[UNK]"
    try:
        backend = Backend(models.WordPiece.from_file(str(vocab), unk_token=unk))
    except Exception as exc:
        raise AtentoError(f"{vocab}: not a readable WordPiece vocabulary ({exc})") from None
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=bool(settings.get("tokenize_chinese_chars", True)),
        strip_accents=settings.get("strip_accents"),
        lowercase=bool(settings.get("do_lower_case", True)),
    )  # fmt: skip
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##")
    _mark_special(backend, tokens)
    return backend


def _byte_level_bpe(vocab: Path, merges: Path, settings: dict[str, Any], tokens: Named) -> Backend:
    """GPT-2's tokenizer from vocab.json + merges.txt (byte-level BPE)."""
    try:
        bpe = models.BPE.from_file(str(vocab), str(merges))
    except Exception as exc:
        raise AtentoError(f"{vocab}, {merges}: not a readable BPE model ({exc})") from None
    backend = Backend(bpe)
    prefix = bool(settings.get("add_prefix_space", False))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=prefix)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    _mark_special(backend, tokens)
    return backend
