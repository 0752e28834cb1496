"""BLEU by source sentence length (Bahdanau et al. 2015, Fig. 2).

Sentences are bucketed by source length in whitespace-separated words, and each bucket gets
its own corpus-level sacreBLEU. The plain encoder-decoder squeezes the whole source into one
vector, so its BLEU falls as sentences grow; attention keeps it up. Plotting several systems on
one figure shows the gap on the same test set.

Buckets are given by their upper edges: edges (10, 20) make [1, 10], [11, 20] and [21, inf).
Empty buckets are left out (BLEU is undefined there).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from atento.analysis.plotting import plt, save_figure
from atento.errors import AtentoError  # noqa: E402
from atento.training.metrics import corpus_bleu  # noqa: E402

DEFAULT_EDGES = (10, 15, 20, 25, 30, 40)


@dataclass
class LengthBucket:
    """Sentences whose source has low..high words (high None = no upper limit)."""

    low: int
    high: int | None
    sentences: int
    bleu: float

    @property
    def label(self) -> str:
        return f"{self.low}-{self.high}" if self.high is not None else f"{self.low}+"

    def to_json(self) -> dict:
        return {"bounds": [self.low, self.high], "sentences": self.sentences, "bleu": self.bleu}


def parse_edges(text: str) -> tuple[int, ...]:
    """'10,20,30' -> (10, 20, 30); strictly increasing positive integers, else AtentoError."""
    try:
        edges = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise AtentoError(f"bucket edges must be integers like 10,20,30, got {text!r}") from None
    if not edges or edges[0] < 1 or any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise AtentoError(f"bucket edges must be increasing positive integers, got {text!r}")
    return edges


def bleu_by_length(
    sources: Sequence[str],
    hypotheses: Sequence[str],
    references: Sequence[str],
    *,
    edges: Sequence[int] = DEFAULT_EDGES,
) -> list[LengthBucket]:
    """sacreBLEU per source-length bucket (words); detokenised hypotheses vs raw references."""
    if not len(sources) == len(hypotheses) == len(references):
        raise ValueError("sources, hypotheses and references must have one line each")
    words = [len(s.split()) for s in sources]
    buckets = []
    for low, high in zip([0, *edges], [*edges, None], strict=True):  # words in (low, high]
        floor = low if low else -1  # an empty source (0 words) goes to the first bucket
        idx = [i for i, n in enumerate(words) if floor < n and (high is None or n <= high)]
        if not idx:
            continue
        bleu = corpus_bleu([hypotheses[i] for i in idx], [references[i] for i in idx])
        buckets.append(LengthBucket(low + 1, high, len(idx), bleu))
    return buckets


def plot_bleu_by_length(
    systems: Mapping[str, Sequence[LengthBucket]], path: str | Path, *, title: str = ""
) -> Path:
    """One line per system: BLEU against source length (bucket midpoints), sentence counts
    as labels on the x axis of the first system."""
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    for name, buckets in systems.items():
        xs = [_midpoint(b) for b in buckets]
        ax.plot(xs, [b.bleu for b in buckets], marker="o", label=name)
    first = next(iter(systems.values()), [])
    ax.set_xticks(
        [_midpoint(b) for b in first], [f"{b.label}\n(n={b.sentences})" for b in first]
    )  # fmt: skip
    ax.set_xlabel("source sentence length (words)")
    ax.set_ylabel("BLEU")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title or "BLEU by source sentence length (Bahdanau et al. 2015, Fig. 2)")
    return save_figure(fig, path)


def _midpoint(b: LengthBucket) -> float:
    return (b.low + b.high) / 2 if b.high is not None else b.low + 5
