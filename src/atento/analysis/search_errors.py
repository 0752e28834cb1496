"""Beam-search error analysis: is the search or the model at fault? (the lecture's table)

For every sentence, decode y_hat with the beam and take the human reference y*. When y_hat
differs from y* (as token ids), score both under the *same* length-normalised objective
score(y) = log P(y | x) / Ty^alpha (teacher forcing, `atento.analysis.scoring`):

- score(y*) > score(y_hat): the model prefers the reference but the beam did not find it,
  so the **search** is at fault;
- otherwise the model ranks its wrong output at least as high as the reference: the **model**
  is at fault.

Identical outputs are not errors. Both sides are rescored by the same teacher-forced pass, so
the comparison has no numerical bias between the incremental and the batched decoder paths.
If most errors are search errors, a wider beam helps; if most are model errors, spend the effort
on the model (more data, regularisation, another architecture). Note that only errors the
reference reveals are counted; exact search (`atento.analysis.exact`) counts the others.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import torch
from tqdm import tqdm

from atento.analysis.exact import exact_search
from atento.analysis.scoring import SequenceScore, score_sequences, target_ids
from atento.inference import Translator
from atento.models.base import require_eval
from atento.search import Hypothesis, LengthPenalty

SEARCH, MODEL, NONE = "search", "model", "none"

# best hypothesis of each source, and teacher-forced scores of (sources, outputs, finished)
DecodeFn = Callable[[list[list[int]]], list[Hypothesis]]
ScoreFn = Callable[[list[list[int]], list[list[int]], list[bool]], list[SequenceScore]]


def blame(
    output: Sequence[int], output_score: float, reference: Sequence[int], reference_score: float
) -> str:
    """'none' when output == reference (ids), else 'search' if the reference scores strictly
    higher under the same objective, else 'model'."""
    if list(output) == list(reference):
        return NONE
    return SEARCH if reference_score > output_score else MODEL


@dataclass
class Verdict:
    """One sentence of the table; scores are length-normalised, log-probs raw."""

    index: int
    source_ids: Any  # token ids (list[int]), or an image's features (P, C) for captioning
    reference_ids: list[int]
    output_ids: list[int]
    reference_score: float
    output_score: float
    reference_log_prob: float
    output_log_prob: float
    output_finished: bool
    fault: str  # none | search | model
    exact_score: float | None = None  # the model's best score, where exact search ran
    exact_better: bool | None = None  # exact search beat the beam: a true search error

    @property
    def gap(self) -> float:
        """score(y*) - score(y_hat): > 0 for a search error."""
        return self.reference_score - self.output_score


@dataclass
class ErrorReport:
    """The analysis of one beam width and alpha over a set of sentences."""

    beam: int
    alpha: float
    verdicts: list[Verdict]
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def sentences(self) -> int:
        return len(self.verdicts)

    @property
    def search_errors(self) -> int:
        return sum(v.fault == SEARCH for v in self.verdicts)

    @property
    def model_errors(self) -> int:
        return sum(v.fault == MODEL for v in self.verdicts)

    @property
    def errors(self) -> int:
        """Sentences whose output differs from the reference."""
        return self.search_errors + self.model_errors

    @property
    def search_error_fraction(self) -> float:
        """Share of the errors blamed on the search (0 when there is no error)."""
        return self.search_errors / self.errors if self.errors else 0.0

    def summary(self) -> dict:
        """The JSON fields of `atento search-errors --json`."""
        return {
            "sentences": self.sentences,
            "errors": self.errors,
            "search_errors": self.search_errors,
            "model_errors": self.model_errors,
            "search_error_fraction": round(self.search_error_fraction, 4),
            "model_error_fraction": round(1 - self.search_error_fraction, 4)
            if self.errors
            else 0.0,
            "beam": self.beam,
            "alpha": self.alpha,
            "seconds": round(self.seconds, 3),
            **self.extra,
        }

    def worst(self, n: int) -> list[Verdict]:
        """The n errors with the largest score gap |score(y*) - score(y_hat)|."""
        errors = [v for v in self.verdicts if v.fault != NONE]
        return sorted(errors, key=lambda v: abs(v.gap), reverse=True)[:n]


def advice(report: ErrorReport, exact: dict | None = None) -> str:
    """The lecture's conclusion for this table; with `exact` (`check_exact`'s summary) it also
    weighs what exact search found: whether the beam misses the model's own best output."""
    checked = exact["checked"] if exact else 0
    missed = exact["search_errors"] if checked else 0
    found = (
        f"exact search found outputs the model scores higher than the beam's in {missed} of "
        f"{checked} short sentences ({missed / checked:.0%})" if missed else ""
    )  # fmt: skip
    none_found = ""
    if checked and not missed:
        late = f", {exact['timeouts']} timed out" if exact.get("timeouts") else ""
        none_found = f"exact search found no better output in the {checked} short sentences{late}"
    if report.errors == 0:
        text = "No errors: every output equals its reference."
        return text + (f" Yet {found}: the model prefers other outputs there." if found else "")
    share = report.search_error_fraction
    if share > 0.5:
        text = (
            f"{share:.0%} of the errors are search errors: the model prefers the reference, the "
            "beam misses it. Increase the beam width (try --beams to see how far it helps)."
        )
        if found:
            return f"{text} Exact search agrees: {found}."
        return text + (f" ({none_found}: the search errors are in others.)" if none_found else "")
    text = (
        f"{1 - share:.0%} of the errors are model errors: the model scores its wrong output at "
        "least as high as the reference"
    )
    model = "more training data, regularisation, a longer budget or another architecture."
    if found:
        return (
            f"{text}. But {found}: the beam also misses the model's best, so a wider beam would "
            "change outputs, though towards what the model prefers, not towards the references "
            f"(--beams shows whether that helps). Work on the model first: {model}"
        )
    also = f"; {none_found} either" if none_found else ""
    return f"{text}, so a wider beam will not help{also}. Work on the model: {model}"


def analyse(
    sources: Sequence[Sequence[int]],
    references: Sequence[Sequence[int]],
    *,
    decode: DecodeFn,
    score: ScoreFn,
    beam: int,
    alpha: float,
    reference_scores: Sequence[SequenceScore] | None = None,
) -> ErrorReport:
    """The error table for one beam width: decode, rescore both sides, blame.

    sources, references: ids without BOS / EOS, one list per sentence.
    decode: the best hypothesis of each source, from the search under test (beam K, alpha).
    score: teacher-forced scores with the same length penalty as the search.
    reference_scores: precomputed scores of the references (they do not depend on the beam).
    """
    start = time.perf_counter()
    srcs = [s if isinstance(s, torch.Tensor) else list(s) for s in sources]  # ids or features
    refs = [list(r) for r in references]
    hyps = decode(srcs)
    outputs = [list(h.tokens) for h in hyps]
    finished = [h.finished for h in hyps]
    out_scores = score(srcs, outputs, finished)
    if reference_scores is None:
        reference_scores = score(srcs, refs, [True] * len(refs))
    verdicts = [
        Verdict(
            index=i,
            source_ids=srcs[i],
            reference_ids=refs[i],
            output_ids=outputs[i],
            reference_score=r.score,
            output_score=o.score,
            reference_log_prob=r.log_prob,
            output_log_prob=o.log_prob,
            output_finished=finished[i],
            fault=blame(outputs[i], o.score, refs[i], r.score),
        )  # fmt: skip
        for i, (r, o) in enumerate(zip(reference_scores, out_scores, strict=True))
    ]
    return ErrorReport(beam, alpha, verdicts, time.perf_counter() - start)


# --- running the analysis with a trained model ---------------------------------------------


def decode_fn(translator: Translator, *, progress: bool = False) -> DecodeFn:
    """The translator's search (its beam and alpha) as a `DecodeFn`."""

    def decode(sources: list[list[int]]) -> list[Hypothesis]:
        return [h[0] for h in translator.translate_ids(sources, progress=progress)]

    return decode


def score_fn(translator: Translator, *, progress: bool = False) -> ScoreFn:
    """Teacher-forced scoring with the translator's model and length penalty as a `ScoreFn`."""
    penalty = LengthPenalty(translator.search.alpha)

    def score(src: list[list[int]], tgt: list[list[int]], fin: list[bool]) -> list[SequenceScore]:
        return score_sequences(
            translator.model, src, tgt, length_penalty=penalty, finished=fin,
            batch_size=translator.search.batch_size, progress=progress,
            collate=translator.collate, **target_ids(translator.search_ids),
        )  # fmt: skip

    return score


def analyse_beams_several(
    translator: Translator,
    sources: Sequence,
    reference_lists: Sequence[Sequence[Sequence[int]]],
    beams: Sequence[int],
    *,
    progress: bool = False,
) -> list[ErrorReport]:
    """One `ErrorReport` per beam width (the translator's alpha), with one or several
    references per source (e.g. the five captions of an image), scored once: y* is the
    reference the model scores highest, so the search is blamed when the best-scoring reference
    beats the output, and an output equal to any reference is no error. Sources are whatever
    the translator's `collate` batches (token ids, image features)."""
    score = score_fn(translator, progress=progress)
    srcs = list(sources)
    flat_src = [s for s, refs in zip(srcs, reference_lists, strict=True) for _ in refs]
    flat_ref = [list(r) for refs in reference_lists for r in refs]
    flat_scores = score(flat_src, flat_ref, [True] * len(flat_ref))
    refs, ref_scores, k = [], [], 0
    for group in reference_lists:
        scored = flat_scores[k : k + len(group)]
        best = max(range(len(group)), key=lambda j: scored[j].score)  # first of equal ones
        refs.append(list(group[best]))
        ref_scores.append(scored[best])
        k += len(group)
    reports = []
    for width in beams:
        t = translator.with_search(beam=width, nbest=1)
        report = analyse(
            srcs, refs, decode=decode_fn(t, progress=progress), score=score, beam=width,
            alpha=t.search.alpha, reference_scores=ref_scores,
        )  # fmt: skip
        for v in report.verdicts:  # equal to another reference than the best-scoring one
            if v.fault != NONE and v.output_ids in [list(r) for r in reference_lists[v.index]]:
                v.fault, v.reference_ids = NONE, list(v.output_ids)
                v.reference_score, v.reference_log_prob = v.output_score, v.output_log_prob
        reports.append(report)
    return reports


def max_output_len(translator: Translator, source_len: int) -> int:
    """The searchers' maximum output length for a source of `source_len` pieces."""
    s = translator.search
    return max(1, math.ceil(s.max_len_a * source_len + s.max_len_b))


def check_exact(
    translator: Translator,
    report: ErrorReport,
    *,
    max_source_len: int,
    seconds: float,
    progress: bool = False,
) -> dict:
    """Run exact search on sentences of <= max_source_len source pieces (Stahlberg & Byrne
    2019) with the beam's finished output as the lower bound; fill each checked verdict's
    `exact_*` fields and return the summary (true search errors among the checked ones)."""
    model, penalty = translator.model, LengthPenalty(report.alpha)
    options = replace(translator.options, attention=False)  # the translator's cache setting
    step = partial(model.step, options=options)
    chosen = [v for v in report.verdicts if len(v.source_ids) <= max_source_len]
    better = timeouts = 0
    require_eval(model, "exact search")
    device = next(model.parameters()).device
    for v in tqdm(chosen, desc="exact search", unit="sent", disable=not progress, leave=False):
        src_ids, src_mask = translator.collate([v.source_ids])
        with torch.no_grad():
            enc = model.encode(src_ids.to(device), src_mask.to(device))
            bound = v.output_score if v.output_finished else -math.inf
            result = exact_search(
                step, model.init_state(enc, options),
                max_len=max_output_len(translator, len(v.source_ids)), length_penalty=penalty,
                lower_bound=bound, time_limit=seconds, device=device,
                unk_id=translator.tgt_tok.unk_id if translator.search.ban_unk else None,
                **translator.search_ids,  # as the beam searched
            )  # fmt: skip
        found = result.tokens is not None and result.tokens != v.output_ids
        v.exact_better = found and result.score > v.output_score + 1e-5
        v.exact_score = result.score if v.exact_better else v.output_score
        better += bool(v.exact_better)
        timeouts += not result.complete
    return {
        "checked": len(chosen),
        "max_source_len": max_source_len,
        "seconds_per_sentence": seconds,
        "search_errors": better,
        "search_error_fraction": round(better / len(chosen), 4) if chosen else 0.0,
        "timeouts": timeouts,
    }
