"""Exponential moving average of the weights (Polyak averaging), for validation and inference.

    shadow <- d * shadow + (1 - d) * weights        after every update,
    d = min(decay, (1 + n) / (10 + n))              n = updates so far

The ramp keeps the first updates from being dominated by the random initialisation (the rule of
TensorFlow's ExponentialMovingAverage); afterwards the average spans about 1 / (1 - decay)
updates. Training keeps updating the raw weights; validation, the best checkpoint and
translation use the average, which smooths out the noise of a high learning rate the way
averaging the last checkpoints does, without storing them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn


def ema_decay_at(decay: float, updates: int) -> float:
    """The decay used for update number `updates` (1-based), ramped up from 2/11."""
    return min(decay, (1 + updates) / (10 + updates))


class WeightAverage:
    """An exponential moving average of `model`'s parameters (buffers are not averaged)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.model = model
        self.decay = decay
        self.updates = 0
        self._params = [p for p in model.parameters() if p.requires_grad]
        self._shadow = [p.detach().float().clone() for p in self._params]

    @torch.no_grad()
    def update(self) -> None:
        """Fold the model's current weights into the average (call after optimizer.step())."""
        self.updates += 1
        weight = 1.0 - ema_decay_at(self.decay, self.updates)
        torch._foreach_lerp_(self._shadow, [p.detach().float() for p in self._params], weight)

    @contextmanager
    @torch.no_grad()
    def applied(self) -> Iterator[None]:
        """Inside the block the model holds the averaged weights; the raw ones come back after."""
        raw = [p.detach().clone() for p in self._params]
        for p, s in zip(self._params, self._shadow, strict=True):
            p.copy_(s)
        try:
            yield
        finally:
            for p, r in zip(self._params, raw, strict=True):
                p.copy_(r)

    def averaged_state_dict(self) -> dict[str, Tensor]:
        """`model.state_dict()` with every averaged parameter replaced by its average; a
        parameter under several names (tied weights) is one tensor under all of them."""
        shadow = {id(p): s for p, s in zip(self._params, self._shadow, strict=True)}
        copies: dict[int, Tensor] = {}
        out = {}
        for key, t in self.model.state_dict(keep_vars=True).items():
            if id(t) not in copies:
                copies[id(t)] = (
                    shadow[id(t)].clone().to(t.dtype) if id(t) in shadow else t.detach().clone()
                )
            out[key] = copies[id(t)]
        return out

    def load(self, averaged: dict[str, Tensor], updates: int) -> None:
        """Restore the average from `averaged_state_dict()` output (for resuming)."""
        by_id = {id(t): key for key, t in self.model.state_dict(keep_vars=True).items()}
        for s, p in zip(self._shadow, self._params, strict=True):
            s.copy_(averaged[by_id[id(p)]])
        self.updates = updates
