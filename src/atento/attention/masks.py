"""The one mask convention of atento: a BoolTensor where True means valid / may attend."""

from __future__ import annotations

import torch
from torch import Tensor


def causal_mask(size: int, device: torch.device | None = None) -> Tensor:
    """(T, T) mask, True where query position t may attend to key position s (s <= t)."""
    return torch.ones(size, size, dtype=torch.bool, device=device).tril()
