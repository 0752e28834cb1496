"""The optimiser: AdamW with decoupled weight decay on matrices and embeddings only."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from atento.config import TrainConfig


def build_optimizer(model: torch.nn.Module, train: TrainConfig) -> torch.optim.AdamW:
    """AdamW over `param_groups`; `train.fused_optimizer`: PyTorch's fused kernel (one pass over
    each parameter, its gradient and both moments) instead of the per-parameter loop of about
    ten tensor operations that PyTorch runs on a CPU (foreach is CUDA's default only)."""
    fused = {"fused": True} if train.fused_optimizer else {}
    return torch.optim.AdamW(
        param_groups(model, train.weight_decay, train.lr), lr=train.lr,
        betas=(0.9, train.beta2), eps=1e-9, **fused,
    )  # fmt: skip


IMPLEMENTATION = ("fused", "foreach")  # the groups' flags that choose AdamW's implementation


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """`optimizer.load_state_dict(state)`, keeping this optimiser's implementation: the saved
    groups' `fused` / `foreach` flags would otherwise win over `train.fused_optimizer` on
    resume (the state itself, step and moments, is the same for both)."""
    keep = [{k: g.get(k) for k in IMPLEMENTATION} for g in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, flags in zip(optimizer.param_groups, keep, strict=True):
        group.update(flags)


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
