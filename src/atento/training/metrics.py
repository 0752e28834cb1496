"""Corpus-level BLEU and chrF from sacrebleu, on detokenised output against raw references."""

from __future__ import annotations

from dataclasses import dataclass

import sacrebleu


@dataclass
class Scores:
    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str


def corpus_scores(hypotheses: list[str], references: list[str]) -> Scores:
    """sacreBLEU BLEU (13a tokenisation) and chrF over the whole corpus, with signatures."""
    bleu = sacrebleu.metrics.BLEU()
    chrf = sacrebleu.metrics.CHRF()
    b = bleu.corpus_score(hypotheses, [references])
    c = chrf.corpus_score(hypotheses, [references])
    return Scores(
        bleu=round(b.score, 2),
        chrf=round(c.score, 2),
        bleu_signature=str(bleu.get_signature()),
        chrf_signature=str(chrf.get_signature()),
    )


def corpus_bleu(hypotheses: list[str], references: list[str]) -> float:
    return round(sacrebleu.metrics.BLEU().corpus_score(hypotheses, [references]).score, 2)


@dataclass
class CaptionScores:
    bleu: list[float]  # BLEU-1 .. BLEU-4 (cumulative: geometric mean of p_1 .. p_n, times BP)
    signature: str
    chrf: float  # chrF against the same references


def caption_bleu(hypotheses: list[str], references: list[list[str]]) -> CaptionScores:
    """Corpus BLEU-1..4 of captions against several references each (sacreBLEU).

    Captions are already tokenised and lower-cased (the data's tokenisation), so sacreBLEU's
    tokeniser is off (`tokenize="none"`). An image with fewer references than the most any
    image has repeats its first one: a repeated reference changes neither the clipped n-gram
    counts nor the closest reference length, so the score is that of the references given.
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists")
    width = max((len(r) for r in references), default=1)
    streams = [[refs[k] if k < len(refs) else refs[0] for refs in references]
               for k in range(width)]  # fmt: skip
    scores, signature = [], ""
    for n in (1, 2, 3, 4):
        metric = sacrebleu.metrics.BLEU(tokenize="none", max_ngram_order=n, force=True)
        scores.append(round(metric.corpus_score(hypotheses, streams).score, 2))
        signature = str(metric.get_signature())
    chrf = round(sacrebleu.metrics.CHRF().corpus_score(hypotheses, streams).score, 2)
    return CaptionScores(scores, signature, chrf)
