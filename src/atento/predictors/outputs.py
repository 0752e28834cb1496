"""What decoding returns to a user: hypotheses as text, pieces and scores, with their sources.

`Output` is one hypothesis and `Translation` a source with its n-best; the Python API, the
command line and the server all format these (`wrap` builds them from a search's
`Hypothesis` objects through the run's predictor, which knows its tokenizers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from atento.data.vocab import EOS_PIECE
from atento.search import Hypothesis


@dataclass
class Output:
    """One hypothesis: `text` (detokenised), `pieces` (output pieces, no EOS), `tokens` (ids),
    `score` (length-normalised, what the beam ranks by), `log_prob` (raw sum), one
    `token_log_probs` entry per generated step (EOS included when `finished`), and `attention`
    (Ty, S) with rows = pieces (+ EOS when finished) and columns = the source pieces + EOS, or
    None unless asked for."""

    text: str
    pieces: list[str]
    tokens: list[int]
    score: float
    log_prob: float
    token_log_probs: list[float]
    finished: bool
    attention: Tensor | None = None

    @property
    def attention_rows(self) -> list[str]:
        """The row labels of `attention`: the pieces plus EOS when finished."""
        return [*self.pieces, EOS_PIECE] if self.finished else list(self.pieces)


@dataclass
class Translation:
    """A source sentence and its n-best `Output`s (best first); the best one's fields are
    available directly (`t.text`, `t.score`, ...)."""

    source: str
    source_pieces: list[str]  # the pieces the encoder read, EOS included
    nbest: list[Output] = field(default_factory=list)

    @property
    def best(self) -> Output:
        return self.nbest[0]

    def __getattr__(self, name: str):
        if name in Output.__dataclass_fields__:
            return getattr(self.best, name)
        raise AttributeError(name)


def wrap_outputs(predictor: Any, hyps: list[Hypothesis], *, columns: int | None) -> list[Output]:
    """`Output`s of a search's hypotheses; attention cut to `columns` source positions (a
    batch's padding) and to the rows the hypothesis has."""
    outputs = []
    for h in hyps:
        pieces = predictor.output_pieces(list(h.tokens))
        rows = len(pieces) + (1 if h.finished else 0)
        weights = None
        if h.attention is not None:
            weights = h.attention[:rows, :columns].float()
        outputs.append(
            Output(
                text=predictor.decode(list(h.tokens)), pieces=pieces, tokens=list(h.tokens),
                score=h.score, log_prob=h.log_prob, token_log_probs=list(h.token_log_probs),
                finished=h.finished, attention=weights,
            )
        )  # fmt: skip
    return outputs


def wrap(predictor: Any, source: str, hyps: list[Hypothesis]) -> Translation:
    """A source line and its hypotheses as a `Translation`."""
    pieces = predictor.source_pieces(source) if source else []
    return Translation(source, pieces, wrap_outputs(predictor, hyps, columns=len(pieces)))
