"""The one mask convention of atento: a BoolTensor where True means valid / may attend."""

from __future__ import annotations

import torch
from torch import Tensor


def lengths_to_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """(B,) lengths -> (B, L) mask, True on the first `length` positions of each row."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def causal_mask(size: int, device: torch.device | None = None) -> Tensor:
    """(T, T) mask, True where query position t may attend to key position s (s <= t)."""
    return torch.ones(size, size, dtype=torch.bool, device=device).tril()
