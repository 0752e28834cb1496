"""Line-aligned parallel text: read two files (plain or gzip) and encode them to id pairs.

    pairs = read_parallel("train.fr.gz", "train.en.gz")      # [(src, tgt), ...]
    encoded, dropped = encode_pairs(pairs, src_tok, tgt_tok, max_len=100)

Ids come without BOS / EOS; `batching.collate` adds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from atento.data.lines import DEFAULT_POLICY, LinePolicy, read_text_lines
from atento.data.tokenizers import Tokenizer
from atento.errors import AtentoError

IdPair = tuple[list[int], list[int]]


def read_lines(path: str | Path, policy: LinePolicy = DEFAULT_POLICY) -> list[str]:
    """Lines of a UTF-8 text file (`.gz` suffix = gzip), trailing whitespace stripped.

    A missing or unreadable file, or invalid UTF-8 (under the default policy), raises
    AtentoError naming the file, and the line and byte offset (`atento.data.lines`).
    """
    return read_text_lines(path, policy)


def read_parallel(
    src_path: str | Path, tgt_path: str | Path, policy: LinePolicy = DEFAULT_POLICY
) -> list[tuple[str, str]]:
    """(source, target) sentence pairs from two line-aligned files; counts must match."""
    src, tgt = read_lines(src_path, policy), read_lines(tgt_path, policy)
    if len(src) != len(tgt):
        raise AtentoError(
            f"line counts differ: {src_path} has {len(src)} lines, {tgt_path} has {len(tgt)}"
        )
    return list(zip(src, tgt, strict=True))


def encode_pairs(
    pairs: Sequence[tuple[str, str]],
    src_tok: Tokenizer,
    tgt_tok: Tokenizer,
    *,
    max_len: int,
) -> tuple[list[IdPair], int]:
    """Encode pairs to ids (no BOS / EOS) and drop unusable ones.

    A pair is dropped when either side encodes to nothing, or to more than `max_len` pieces
    (`max_len <= 0` keeps any length). Returns (kept pairs in input order, number dropped).
    """
    src_ids = src_tok.encode_batch([s for s, _ in pairs])
    tgt_ids = tgt_tok.encode_batch([t for _, t in pairs])
    limit = max_len if max_len > 0 else float("inf")
    kept: list[IdPair] = []
    for s, t in zip(src_ids, tgt_ids, strict=True):
        if 0 < len(s) <= limit and 0 < len(t) <= limit:
            kept.append((s, t))
    return kept, len(pairs) - len(kept)
