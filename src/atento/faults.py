"""Named fault-injection points, for the crash-safety tests.

    ATENTO_FAULT=checkpoint-write@2 atento train ...    # SIGKILL at the 2nd checkpoint write

`point(name)` kills this process with SIGKILL (no cleanup, no `finally`, like a power cut or
the OOM killer) when ATENTO_FAULT names it, at its N-th passage (`name@N`, default 1). Unset,
a point costs one dictionary lookup. The points: `step` (after the backward pass, before the
optimiser step), `checkpoint-write` (a checkpoint's files half written), `checkpoint-commit`
(between the two renames that swap a checkpoint in), `validation` (after a validation's row
is in metrics.jsonl, before the checkpoints of that step are written).
"""

from __future__ import annotations

import os
import signal

POINTS = ("step", "checkpoint-write", "checkpoint-commit", "validation")
_passed: dict[str, int] = {}


def point(name: str) -> None:
    """SIGKILL this process if ATENTO_FAULT asks for `name` at this passage."""
    spec = os.environ.get("ATENTO_FAULT")
    if not spec:
        return
    target, _, nth = spec.partition("@")
    if target != name:
        return
    _passed[name] = _passed.get(name, 0) + 1
    if _passed[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
