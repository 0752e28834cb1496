"""Input helpers shared by the analysis subcommands (attention, score, beam-sweep, ...)."""

from __future__ import annotations

import sys

from atento.data.parallel import read_parallel
from atento.errors import AtentoError


def read_pairs(src: str, ref: str) -> tuple[list[str], list[str]]:
    """Line-aligned sources and references; missing files, unequal counts and empty input
    raise AtentoError naming the file."""
    pairs = read_parallel(src, ref)
    if not pairs:
        raise AtentoError(f"empty input: {src} has no lines")
    return [s for s, _ in pairs], [r for _, r in pairs]


def show_progress(args: object) -> bool:
    """Progress bars go to stderr, only when it is a terminal and no JSON is printed."""
    return sys.stderr.isatty() and not getattr(args, "json", False)
