"""Position encodings added to the (scaled) token embeddings (Vaswani et al. 2017, 3.5).

    PE(pos, 2i)   = sin(pos / 10000^(2i / d))
    PE(pos, 2i+1) = cos(pos / 10000^(2i / d))

`SinusoidalPositions` has no parameters and works at any position (a table of `max_positions`
rows is precomputed; later positions are computed on the fly). Its `layout` is `interleaved`
(the formula above, sin and cos alternating) or `halves` (Marian's, as transformers'
`MarianSinusoidalPositionalEmbedding`: the same frequencies, every sin in the first half of the
dimensions and every cos in the second, computed in float64 as Marian's table is).
`LearnedPositions` is one embedding row per position, so it cannot go beyond `max_positions`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from atento.errors import AtentoError

LAYOUTS = ("interleaved", "halves")


def sinusoid_table(positions: Tensor, d_model: int, layout: str = "interleaved") -> Tensor:
    """positions (L,) -> encodings (L, D) by the formula above (float32), sin and cos
    interleaved or in halves (`layout`)."""
    if layout == "halves":
        i2 = torch.arange(0, d_model, 2, dtype=torch.float64, device=positions.device)
        angles64 = positions.double()[:, None] / torch.pow(10000.0, i2 / d_model)[None, :]
        half = (d_model + 1) // 2  # sin(angle_i) at i, cos(angle_i) at half + i
        table64 = torch.cat([angles64.sin(), angles64[:, : d_model // 2].cos()], dim=1)
        return table64[:, : half + d_model // 2].float()
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

    def __init__(self, *, d_model: int, max_positions: int, layout: str = "interleaved") -> None:
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"unknown sinusoid layout {layout!r} (use {', '.join(LAYOUTS)})")
        self.d_model, self.layout = d_model, layout
        table = sinusoid_table(torch.arange(max_positions), d_model, layout)
        self.register_buffer("table", table, persistent=False)  # (P, D), not in checkpoints

    def forward(self, length: int, offset: int = 0) -> Tensor:
        if offset + length <= self.table.size(0):
            return self.table[offset : offset + length]
        positions = torch.arange(offset, offset + length, device=self.table.device)
        return sinusoid_table(positions, self.d_model, self.layout).to(self.table.dtype)

    def at(self, positions: Tensor) -> Tensor:
        """Encodings of any positions (B, T) LongTensor -> (B, T, D): rows with their own
        offsets (left-padded prompts)."""
        if (int(positions.max()) if positions.numel() else 0) < self.table.size(0):
            return self.table[positions]
        flat = sinusoid_table(positions.reshape(-1), self.d_model, self.layout)
        flat = flat.to(self.table.dtype)
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


def make_positions(
    kind: str, *, d_model: int, max_positions: int, layout: str = "interleaved"
) -> nn.Module:
    """`model.positions` -> module: `sinusoidal` (sin and cos in `layout`) or `learned`."""
    if kind == "sinusoidal":
        return SinusoidalPositions(d_model=d_model, max_positions=max_positions, layout=layout)
    if kind == "learned":
        return LearnedPositions(d_model=d_model, max_positions=max_positions)
    raise ValueError(f"unknown positions {kind!r} (use sinusoidal or learned)")
