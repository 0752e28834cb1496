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
            where = "; ".join(
                _empty_lines(path, [i for i, pair in enumerate(pairs, 1) if not pair[side]])
                for side, path in ((0, src), (1, ref))
                if not all(pair[side] for pair in pairs)
            )
            warn(f"{where}: {len(pairs) - len(kept)} pair(s) left out")
        if not kept:
            raise AtentoError(f"empty input: every line pair of {src} / {ref} has an empty side")
        pairs = kept
    return [s for s, _ in pairs], [r for _, r in pairs]


def _empty_lines(path: str, numbers: list[int]) -> str:
    """ "FILE has N empty line(s) (line 2, 5, ...)": where the empty lines are."""
    shown = ", ".join(map(str, numbers[:5])) + (", ..." if len(numbers) > 5 else "")
    return f"{path} has {len(numbers)} empty line(s) (line {shown})"


def show_progress(args: object) -> bool:
    """Progress bars go to stderr, only when it is a terminal and no JSON is printed."""
    return sys.stderr.isatty() and not getattr(args, "json", False)
