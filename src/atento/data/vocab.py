"""Special token ids, fixed for every tokenizer so models and searchers never have to ask.

    PAD_ID = 0  padding (masked out everywhere; masks are True = real token)
    UNK_ID = 1  unknown piece / character
    BOS_ID = 2  start of the target (the decoder's first input)
    EOS_ID = 3  end of a sequence (appended to sources and targets)

Tokenizers never add BOS / EOS themselves; `batching` does, in one place.
"""

from __future__ import annotations

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
