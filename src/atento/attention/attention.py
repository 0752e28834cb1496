"""Masking, softmax and the weighted sum, done once for every score function."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from atento.attention.scores import AttentionScore


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
        energies = energies.masked_fill(~mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(energies, dim=-1)
        context = weights @ values  # (B, T, Dv)
        return context, weights
