"""Beam-width sweeps: BLEU, model score and speed against the beam width K (and alpha).

The lecture's claim, measured: going from greedy (K=1) to K=3..10 usually helps, beyond that
BLEU gains shrink while decoding slows down roughly linearly in K. Each point decodes the whole
set once; `mean_score` is the mean length-normalised score of the outputs (higher = the search
found outputs the model likes better; with one alpha it can only rise with K in expectation,
not per sentence, since beam search is not monotone in K).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from atento.analysis.plotting import plt, save_figure
from atento.errors import AtentoError  # noqa: E402
from atento.inference import Translator  # noqa: E402
from atento.training.metrics import corpus_scores  # noqa: E402


@dataclass
class SweepPoint:
    beam: int
    alpha: float
    bleu: float
    chrf: float
    mean_score: float
    seconds: float
    sentences_per_second: float


def parse_int_list(text: str, *, name: str = "--beams") -> list[int]:
    """'1,5,20' -> [1, 5, 20]: positive integers, no repeats; else AtentoError."""
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise AtentoError(f"{name} must be integers like 1,5,20, got {text!r}") from None
    if not values or min(values) < 1 or len(set(values)) != len(values):
        raise AtentoError(f"{name} must be distinct integers >= 1, got {text!r}")
    return values


def parse_float_list(text: str, *, name: str = "--alphas") -> list[float]:
    """'0,0.5,1' -> [0.0, 0.5, 1.0]: non-negative numbers; else AtentoError."""
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise AtentoError(f"{name} must be numbers like 0,0.5,1, got {text!r}") from None
    if not values or not all(v >= 0 for v in values):
        raise AtentoError(f"{name} must be numbers >= 0, got {text!r}")
    return values


def beam_sweep(
    translator: Translator,
    sources: Sequence[str],
    references: Sequence[str],
    *,
    beams: Sequence[int],
    alphas: Sequence[float],
    progress: bool = False,
    encoded: Sequence | None = None,
    scorer: Callable[[list[str]], tuple[float, float]] | None = None,
) -> list[SweepPoint]:
    """Decode `sources` once per (alpha, beam) pair; sacreBLEU/chrF against `references`.

    `encoded`: the sources as the translator takes them (default: `sources` tokenised; image
    features for captioning); `scorer(outputs) -> (bleu, chrf)` replaces the one-reference
    scores (captioning: BLEU-4 and chrF against every reference of an image)."""
    src_ids = translator.src_tok.encode_batch(sources) if encoded is None else list(encoded)

    def one_reference(outputs: list[str]) -> tuple[float, float]:
        scores = corpus_scores(outputs, list(references))
        return scores.bleu, scores.chrf

    scorer = scorer or one_reference
    points = []
    for alpha in alphas:
        for k in beams:
            t = translator.with_search(beam=k, alpha=alpha, nbest=1)
            start = time.perf_counter()
            hyps = [h[0] for h in t.translate_ids(src_ids, progress=progress)]
            seconds = time.perf_counter() - start
            outputs = [t.tgt_tok.decode(h.tokens) for h in hyps]
            bleu, chrf = scorer(outputs)
            points.append(
                SweepPoint(
                    beam=k,
                    alpha=alpha,
                    bleu=bleu,
                    chrf=chrf,
                    mean_score=round(sum(h.score for h in hyps) / max(len(hyps), 1), 4),
                    seconds=round(seconds, 3),
                    sentences_per_second=round(len(hyps) / max(seconds, 1e-9), 2),
                )  # fmt: skip
            )
    return points


def points_to_json(points: Sequence[SweepPoint]) -> list[dict]:
    return [asdict(p) for p in points]


def plot_sweep(points: Sequence[SweepPoint], path: str | Path, *, title: str = "") -> Path:
    """BLEU (left axis, solid) and sentences/s (right axis, dashed) against beam width,
    one pair of lines per alpha."""
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    speed_ax = ax.twinx()
    for alpha in sorted({p.alpha for p in points}):
        ps = sorted((p for p in points if p.alpha == alpha), key=lambda p: p.beam)
        ks = [p.beam for p in ps]
        (line,) = ax.plot(ks, [p.bleu for p in ps], marker="o", label=f"BLEU, alpha={alpha:g}")
        speed_ax.plot(
            ks, [p.sentences_per_second for p in ps], linestyle="--", marker="x",
            color=line.get_color(), label=f"sent/s, alpha={alpha:g}",
        )  # fmt: skip
    ax.set_xlabel("beam width K")
    ax.set_ylabel("BLEU")
    speed_ax.set_ylabel("sentences per second (dashed)")
    ax.set_xticks(sorted({p.beam for p in points}))
    ax.grid(alpha=0.3)
    handles = ax.get_legend_handles_labels()
    more = speed_ax.get_legend_handles_labels()
    ax.legend(handles[0] + more[0], handles[1] + more[1], fontsize=8, loc="lower right")
    ax.set_title(title or "Beam width: BLEU and speed")
    return save_figure(fig, path)
