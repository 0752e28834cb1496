"""Learning-rate schedules: linear warm-up, then inverse-square-root or cosine decay."""

from __future__ import annotations

import math


def warmup_inverse_sqrt(warmup_steps: int):
    """Factor on the peak learning rate at `step`: step/warmup rising to 1, then sqrt(warmup/step).

    The factor is 1 exactly at step == warmup_steps (Vaswani et al. 2017's schedule rescaled so
    that `train.lr` is the peak).
    """
    warmup = max(1, warmup_steps)

    def factor(step: int) -> float:
        step = max(1, step)
        return min(step / warmup, math.sqrt(warmup / step))

    return factor


def warmup_cosine(warmup_steps: int, total_steps: int, min_ratio: float):
    """Linear warm-up to 1, then a half cosine down to `min_ratio` at `total_steps` (and flat
    after it), as GPT-2 / nanoGPT train."""
    warmup, total = max(1, warmup_steps), max(warmup_steps + 1, total_steps)

    def factor(step: int) -> float:
        step = max(1, step)
        if step < warmup:
            return step / warmup
        progress = min(1.0, (step - warmup) / (total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def schedule_factor(train) -> object:
    """The factor function of a config's `train` section (`train.schedule`)."""
    if train.schedule == "cosine":
        return warmup_cosine(train.warmup_steps, train.max_steps, train.min_lr / train.lr)
    return warmup_inverse_sqrt(train.warmup_steps)
