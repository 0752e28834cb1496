"""One decoded output sequence and how it was scored."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor


@dataclass
class Hypothesis:
    """A decoded sequence.

    tokens: output ids, without BOS and without EOS.
    score: the length-normalised score the beam ranks by, `LengthPenalty(log_prob, Ty)`.
    log_prob: raw sum of the token log-probs, including the EOS step when `finished`.
    token_log_probs: one per generated step (Ty of them), including EOS when `finished`.
    attention: (Ty, S) source attention, one row per generated step including EOS, or None
        when the model returns no attention.
    finished: True when the sequence ended with EOS, False when it hit the maximum length.
    """

    tokens: list[int]
    score: float
    log_prob: float
    token_log_probs: list[float]
    attention: Tensor | None
    finished: bool

    @property
    def length(self) -> int:
        """Ty: generated steps, counting the EOS when finished."""
        return len(self.token_log_probs)


def make_hypothesis(
    token_ids: Tensor,
    token_log_probs: Tensor,
    log_prob: Tensor,
    attention: Tensor | None,
    *,
    finished: bool,
    length_penalty: Callable[[float, int], float],
) -> Hypothesis:
    """Build a `Hypothesis` from one row of search history.

    token_ids: (Ty,) generated ids, including the final EOS when `finished`.
    token_log_probs: (Ty,) log-prob of each generated id.
    log_prob: () accumulated log-prob, the value the search ranked by before normalisation.
    attention: (Ty, S) or None.
    Greedy and beam search both build their outputs here, so their scores are bit-identical.
    """
    ids = token_ids.tolist()
    if finished:
        ids = ids[:-1]
    total = float(log_prob)
    length = int(token_log_probs.numel())
    return Hypothesis(
        tokens=ids,
        score=float(length_penalty(total, length)),
        log_prob=total,
        token_log_probs=token_log_probs.tolist(),
        attention=None if attention is None else attention.detach().cpu(),
        finished=finished,
    )
