"""Line-aligned parallel text: read two files (plain or gzip) and encode them to id pairs.

    pairs = read_parallel("train.fr.gz", "train.en.gz")      # [(src, tgt), ...]
    encoded, dropped = encode_pairs(pairs, src_tok, tgt_tok, max_len=100)

Ids come without BOS / EOS; `batching.collate` adds them.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path

from atento.data.tokenizers import Tokenizer
from atento.errors import AtentoError

IdPair = tuple[list[int], list[int]]


def read_lines(path: str | Path) -> list[str]:
    """Lines of a UTF-8 text file (`.gz` suffix = gzip), trailing whitespace stripped.

    A missing file, or one that is not UTF-8 / not gzip, raises AtentoError naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise AtentoError(f"file not found: {path}")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8") as f:
                text = f.read()
        else:
            text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise AtentoError(f"file is not UTF-8 text: {path}") from None
    except (OSError, EOFError) as exc:
        raise AtentoError(f"cannot read {path}: {exc}") from None
    # split("\n") rather than splitlines(): U+2028 and friends may occur inside a sentence.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip() for line in lines]


def read_parallel(src_path: str | Path, tgt_path: str | Path) -> list[tuple[str, str]]:
    """(source, target) sentence pairs from two line-aligned files; counts must match."""
    src, tgt = read_lines(src_path), read_lines(tgt_path)
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
