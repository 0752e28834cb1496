"""Length normalisation of sequence log-probabilities (Wu et al. 2016 simplified; the lecture's
1/Ty^alpha).

Beam search maximises sum_t log P(y_t | x, y_<t), which favours short outputs: every extra token
adds a negative term. Dividing by Ty^alpha (Ty counts the generated tokens including EOS) softens
this: alpha=0 is the raw log-prob, alpha=1 the per-token average.
"""

from __future__ import annotations

from torch import Tensor

from atento.errors import AtentoError


class LengthPenalty:
    """`LengthPenalty(alpha)(log_prob, length) = log_prob / length**alpha`.

    Accepts floats/ints or tensors (broadcast together), so search and the analysis code that
    scores references use the same rule. `length` is Ty, the number of generated tokens including
    the EOS; a length below 1 is treated as 1.
    """

    def __init__(self, alpha: float = 0.0) -> None:
        if not alpha >= 0.0:  # also rejects NaN
            raise AtentoError(f"length penalty alpha must be >= 0, got {alpha}")
        self.alpha = float(alpha)

    def __call__(self, log_prob: Tensor | float, length: Tensor | int) -> Tensor | float:
        if self.alpha == 0.0:
            return log_prob
        if isinstance(length, Tensor):
            return log_prob / length.float().clamp(min=1.0) ** self.alpha
        return log_prob / max(float(length), 1.0) ** self.alpha

    def __repr__(self) -> str:
        return f"LengthPenalty(alpha={self.alpha})"
