"""The optimiser: AdamW with decoupled weight decay on matrices and embeddings only."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from atento.config import TrainConfig


def build_optimizer(model: torch.nn.Module, train: TrainConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(
        param_groups(model, train.weight_decay, train.lr), lr=train.lr,
        betas=(0.9, train.beta2), eps=1e-9,
    )  # fmt: skip


def param_groups(model: torch.nn.Module, weight_decay: float, lr: float) -> list[dict]:
    """AdamW's parameter groups: decoupled weight decay on the matrices and embeddings only
    (not on biases and LayerNorm gains, as GPT-2 trains); one group when there is no decay
    (Adam's update exactly, and the optimiser state of earlier runs still loads). A submodule
    with an `lr_scale` attribute (e.g. a fine-tuned image encoder's tail) has its parameters in
    groups of their own at `lr * lr_scale` (the schedule scales every group alike)."""
    scale = {id(p): m.lr_scale for m in model.modules() if hasattr(m, "lr_scale")
             for p in m.parameters()}  # fmt: skip
    params = [p for p in model.parameters() if p.requires_grad]
    groups = []
    for s in dict.fromkeys([1.0, *(scale[id(p)] for p in params if id(p) in scale)]):
        mine = [p for p in params if scale.get(id(p), 1.0) == s]
        extra = {} if s == 1.0 else {"lr": lr * s}
        if weight_decay == 0:
            groups.append({"params": mine, "weight_decay": 0.0, **extra})
            continue
        groups += [
            {"params": [p for p in mine if p.dim() >= 2], "weight_decay": weight_decay, **extra},
            {"params": [p for p in mine if p.dim() < 2], "weight_decay": 0.0, **extra},
        ]
    return groups
