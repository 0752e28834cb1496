"""Learning-rate schedule: linear warm-up, then inverse-square-root decay."""

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
