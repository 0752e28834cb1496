"""Masking, softmax and the weighted sum, done once for every score function."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from atento.attention.scores import AttentionScore


def masked_softmax(energies: Tensor, mask: Tensor | None) -> Tensor:
    """Attention weights from energies (..., T, S): softmax over S where `mask` is True.

    `mask` is a BoolTensor broadcastable to `energies` (True = may attend), or None for no mask.
    Masked positions get energy -inf, hence weight exactly 0. Shared by `Attention` and
    `MultiHeadAttention`'s explicit path, so both mask and normalise in the same way.
    """
    if mask is not None:
        energies = energies.masked_fill(~mask, float("-inf"))
    return torch.softmax(energies, dim=-1)


class Attention(nn.Module):
    """context_t = sum_s softmax_s(score(s_t, h_s)) h_s over valid source positions.

    Returns the context (B, T, Dv) and the weights (B, T, S); weights are exactly 0 where
    `mask` is False (True = valid) and sum to 1 over the valid positions of each row.
    """

    def __init__(self, score: AttentionScore) -> None:
        super().__init__()
        self.score = score

    def prepare_keys(self, memory: Tensor) -> Tensor:
        return self.score.prepare_keys(memory)

    def forward(
        self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """query (B, T, Dq), keys (B, S, Dk) from prepare_keys, values (B, S, Dv), mask (B, S)."""
        energies = self.score(query, keys)  # (B, T, S)
        weights = masked_softmax(energies, mask.unsqueeze(1))  # mask (B, 1, S)
        context = weights @ values  # (B, T, Dv)
        return context, weights
