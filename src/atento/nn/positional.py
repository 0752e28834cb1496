"""Position encodings added to the (scaled) token embeddings (Vaswani et al. 2017, 3.5).

    PE(pos, 2i)   = sin(pos / 10000^(2i / d))
    PE(pos, 2i+1) = cos(pos / 10000^(2i / d))

`SinusoidalPositions` has no parameters and works at any position (a table of `max_positions`
rows is precomputed; later positions are computed on the fly). `LearnedPositions` is one
embedding row per position, so it cannot go beyond `max_positions`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from atento.errors import AtentoError


def sinusoid_table(positions: Tensor, d_model: int) -> Tensor:
    """positions (L,) -> encodings (L, D) by the formula above (float32)."""
    i2 = torch.arange(0, d_model, 2, dtype=torch.float32, device=positions.device)  # 2i
    inv_freq = torch.exp(-math.log(10000.0) * i2 / d_model)  # 1 / 10000^(2i/d), (ceil(D/2),)
    angles = positions.float()[:, None] * inv_freq[None, :]  # (L, ceil(D/2))
    table = torch.zeros(positions.numel(), d_model, device=positions.device)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles[:, : d_model // 2])
    return table


class SinusoidalPositions(nn.Module):
    """Fixed sinusoidal encodings; forward(length, offset) -> (length, D) for positions
    offset .. offset + length - 1."""

    def __init__(self, *, d_model: int, max_positions: int) -> None:
        super().__init__()
        self.d_model = d_model
        table = sinusoid_table(torch.arange(max_positions), d_model)
        self.register_buffer("table", table, persistent=False)  # (P, D), not in checkpoints

    def forward(self, length: int, offset: int = 0) -> Tensor:
        if offset + length <= self.table.size(0):
            return self.table[offset : offset + length]
        positions = torch.arange(offset, offset + length, device=self.table.device)
        return sinusoid_table(positions, self.d_model).to(self.table.dtype)

    def at(self, positions: Tensor) -> Tensor:
        """Encodings of any positions (B, T) LongTensor -> (B, T, D): rows with their own
        offsets (left-padded prompts)."""
        if (int(positions.max()) if positions.numel() else 0) < self.table.size(0):
            return self.table[positions]
        flat = sinusoid_table(positions.reshape(-1), self.d_model).to(self.table.dtype)
        return flat.view(*positions.shape, self.d_model)


class LearnedPositions(nn.Module):
    """One learned vector per position (Gehring et al. 2017); positions < max_positions."""

    def __init__(self, *, d_model: int, max_positions: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(max_positions, d_model)

    def forward(self, length: int, offset: int = 0) -> Tensor:
        if offset + length > self.embed.num_embeddings:
            raise AtentoError(
                f"sequence of {offset + length} positions is longer than model.max_positions="
                f"{self.embed.num_embeddings} (learned positions cannot extrapolate)"
            )
        positions = torch.arange(offset, offset + length, device=self.embed.weight.device)
        return self.embed(positions)  # (L, D)

    def at(self, positions: Tensor) -> Tensor:
        """Vectors of any positions (B, T) LongTensor -> (B, T, D)."""
        if (int(positions.max()) if positions.numel() else 0) >= self.embed.num_embeddings:
            raise AtentoError(
                f"position {int(positions.max())} is beyond model.max_positions="
                f"{self.embed.num_embeddings} (learned positions cannot extrapolate)"
            )
        return self.embed(positions)


def make_positions(kind: str, *, d_model: int, max_positions: int) -> nn.Module:
    """`model.positions` -> module: `sinusoidal` or `learned`."""
    if kind == "sinusoidal":
        return SinusoidalPositions(d_model=d_model, max_positions=max_positions)
    if kind == "learned":
        return LearnedPositions(d_model=d_model, max_positions=max_positions)
    raise ValueError(f"unknown positions {kind!r} (use sinusoidal or learned)")
