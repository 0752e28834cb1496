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
