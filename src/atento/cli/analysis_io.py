"""Input helpers shared by the analysis subcommands (attention, score, beam-sweep, ...)."""

from __future__ import annotations

import sys

from atento.data.lines import DEFAULT_POLICY, LinePolicy
from atento.data.parallel import read_parallel
from atento.errors import AtentoError, warn


def read_pairs(
    src: str, ref: str, policy: LinePolicy = DEFAULT_POLICY, *, drop_empty: bool = False
) -> tuple[list[str], list[str]]:
    """Line-aligned sources and references under the line `policy`; missing files, unequal
    counts and input with no lines raise AtentoError naming the file. `drop_empty` (corpus
    reports, not line by line) leaves out pairs with an empty side, with a count on stderr."""
    pairs = read_parallel(src, ref, policy)
    if not pairs:
        raise AtentoError(f"empty input: {src} has no lines")
    if drop_empty:
        kept = [(s, r) for s, r in pairs if s and r]
        if len(kept) < len(pairs):
            warn(f"{src}: {len(pairs) - len(kept)} pair(s) with an empty line left out")
        if not kept:
            raise AtentoError(f"empty input: every line pair of {src} / {ref} has an empty side")
        pairs = kept
    return [s for s, _ in pairs], [r for _, r in pairs]


def show_progress(args: object) -> bool:
    """Progress bars go to stderr, only when it is a terminal and no JSON is printed."""
    return sys.stderr.isatty() and not getattr(args, "json", False)
