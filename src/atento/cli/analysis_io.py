"""Input helpers shared by the analysis subcommands (attention, score, beam-sweep, ...)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from atento.cli.common import task_options
from atento.data.lines import DEFAULT_POLICY, LinePolicy
from atento.data.parallel import read_parallel
from atento.errors import AtentoError, warn
from atento.rundir import LoadedRun


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


@dataclass
class Corpus:
    """What a corpus analysis reads: display names of the sources, the model's sources
    (encoded ids, or image features), and each source's reference texts (one or several)."""

    sources: list[str]
    encoded: list
    references: list[list[str]]


def reference_corpus(loaded: LoadedRun, args, *, command: str) -> tuple[Any, Corpus]:
    """(predictor, corpus) for search-errors and beam-sweep: a run whose task offers corpora,
    read from --src/--ref, or from an image set (--split, --captions/--images) for a run that
    captions; an option of another task is an error rather than silently ignored."""
    predictor = loaded.predictor.require("corpus", command=command)
    task_options(args, loaded)  # another task's option would be silently ignored
    if predictor.offers("caption"):  # images with several references each
        images = predictor.image_set(args)
        return predictor, Corpus(images.names, images.features, images.references)
    if not (args.src and args.ref):
        raise AtentoError(f"{command} needs --src FILE and --ref FILE")
    sources, refs = read_pairs(args.src, args.ref, LinePolicy.of(args), drop_empty=True)
    encoded = predictor.encode_many(sources)
    return predictor, Corpus(sources, encoded, [[r] for r in refs])
