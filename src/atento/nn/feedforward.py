"""Position-wise feed-forward network (Vaswani et al. 2017, 3.3).

FFN(x) = max(0, x W1 + b1) W2 + b2
"""

from __future__ import annotations

from torch import Tensor, nn

from atento.nn.dropout import Dropout


class PositionwiseFeedForward(nn.Module):
    """Two linear maps D -> F -> D with a ReLU between, applied at every position alike."""

    def __init__(self, *, d_model: int, ff_size: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.w1 = nn.Linear(d_model, ff_size)
        self.w2 = nn.Linear(ff_size, d_model)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, T, D) -> (B, T, D)."""
        return self.w2(self.dropout(self.w1(x).relu()))
