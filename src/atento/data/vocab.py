"""Special token ids and the `Tokenizer` interface (`atento.data.tokenizers` implements it).

    PAD_ID = 0  padding (masked out everywhere; masks are True = real token)
    UNK_ID = 1  unknown piece / character
    BOS_ID = 2  start of the target (the decoder's first input)
    EOS_ID = 3  end of a sequence (appended to sources and targets)

Every tokenizer reports its special ids as read-only properties, `pad_id`, `unk_id`, `bos_id`,
`eos_id` and `mask_id` ([MASK]: one past the tokenizer's own ids), which default to these, so a
tokenizer that numbers them differently can plug in; a `LabelSet` has none (all None).
Tokenizers never add BOS / EOS themselves; `batching` does, in one place.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

PAD_ID = 0
UNK_ID = 1
BOS_ID = 2
EOS_ID = 3

PAD_PIECE = "<pad>"
UNK_PIECE = "<unk>"
BOS_PIECE = "<s>"
EOS_PIECE = "</s>"

SPECIAL_PIECES: tuple[str, ...] = (PAD_PIECE, UNK_PIECE, BOS_PIECE, EOS_PIECE)
SPECIAL_IDS: frozenset[int] = frozenset((PAD_ID, UNK_ID, BOS_ID, EOS_ID))
N_SPECIAL = len(SPECIAL_PIECES)


class Tokenizer(ABC):
    """Text <-> ids. The special ids are properties, by default this module's PAD 0, UNK 1, BOS 2,
    EOS 3, and [MASK] one past the tokenizer's own ids (the extra embedding row of a masked
    language model); a tokenizer that numbers them differently overrides them."""

    kind: str = ""
    whole_text: bool = False  # encodes line breaks itself (else a text is encoded line by line)

    @property
    def pad_id(self) -> int | None:
        """Padding (masked out everywhere); None when the tokenizer has none."""
        return PAD_ID

    @property
    def unk_id(self) -> int | None:
        """An unknown piece or character."""
        return UNK_ID

    @property
    def bos_id(self) -> int | None:
        """The start of a target (the decoder's first input); [CLS] for BERT."""
        return BOS_ID

    @property
    def eos_id(self) -> int | None:
        """The end of a sequence; [SEP] for BERT."""
        return EOS_ID

    @property
    def mask_id(self) -> int | None:
        """[MASK] of masked-language-model pretraining: `vocab_size`, the row after the
        tokenizer's ids (such a model has vocab_size + 1 embedding rows)."""
        return self.vocab_size

    def search_ids(self) -> dict[str, int]:
        """The ids a searcher takes from the target side: `bos_id` (the first input; the EOS id
        when the tokenizer has no BOS, as GPT-2's one boundary token), `eos_id`, and `pad_id`
        (what fills a finished row; EOS when there is no PAD)."""
        eos = self.eos_id
        if eos is None:
            raise ValueError(f"a {self.kind} tokenizer has no EOS id to decode with")
        bos = eos if self.bos_id is None else self.bos_id
        return {"bos_id": bos, "eos_id": eos, "pad_id": eos if self.pad_id is None else self.pad_id}

    @property
    def regular_ids(self) -> range:
        """The ids of ordinary pieces (what masked-LM pretraining draws its random
        replacements from): after the four special ids, up to the vocabulary's end."""
        return range(N_SPECIAL, self.vocab_size)

    @property
    def embedding_rows(self) -> int:
        """The embedding rows a model over this tokenizer needs with [MASK]: one past the
        highest id, [MASK] included (`vocab_size + 1` where [MASK] is the extra row)."""
        mask = self.mask_id
        return self.vocab_size if mask is None else max(self.vocab_size, mask + 1)

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of ids, specials included (V)."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Ids of `text`, no BOS / EOS added."""

    @abstractmethod
    def decode(self, ids: Sequence[int]) -> str:
        """Text of `ids`; PAD, BOS and EOS are dropped (nothing is cut at EOS)."""

    @abstractmethod
    def pieces(self, text: str) -> list[str]:
        """The pieces `encode(text)` produces, one per id (labels for attention heatmaps)."""

    @abstractmethod
    def id_to_piece(self, i: int) -> str:
        """The piece of one id (specials give `<pad>`, `<unk>`, `<s>`, `</s>`)."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """Everything needed to rebuild this tokenizer, as a plain dict (for checkpoints)."""

    @abstractmethod
    def save(self, directory: Path, name: str) -> None:
        """Write `{name}.json` (and any model file) into `directory`."""

    def encode_batch(self, texts: Iterable[str]) -> list[list[int]]:
        """`encode` over many texts."""
        return [self.encode(t) for t in texts]
