"""Named fault-injection points, for the crash-safety tests.

    ATENTO_FAULT=checkpoint-write@2 atento train ...    # SIGKILL at the 2nd checkpoint write

`point(name)` kills this process with SIGKILL (no cleanup, no `finally`, like a power cut or
the OOM killer) when ATENTO_FAULT names it, at its N-th passage (`name@N`, default 1). Unset,
a point costs one dictionary lookup. The points: `step` (after the backward pass, before the
optimiser step), `checkpoint-write` (a checkpoint's files half written), `checkpoint-commit`
(between the two renames that swap a checkpoint in), `validation` (after a validation's row
is in metrics.jsonl, before the checkpoints of that step are written), `store-build` (a
corpus store half encoded, `atento.data.store`).

`disk_full(name)` raises ENOSPC instead (`ATENTO_FAULT=store-write@3`: the 3rd write of a
corpus store's files fails as on a full disk), for the tests of what a full disk leaves behind.
"""

from __future__ import annotations

import errno
import os
import signal

POINTS = ("step", "checkpoint-write", "checkpoint-commit", "validation", "store-build")
DISK_FULL_POINTS = ("store-write",)
_passed: dict[str, int] = {}


def _due(name: str) -> bool:
    """Whether ATENTO_FAULT asks for `name` at this passage (counting the passages)."""
    spec = os.environ.get("ATENTO_FAULT")
    if not spec:
        return False
    target, _, nth = spec.partition("@")
    if target != name:
        return False
    _passed[name] = _passed.get(name, 0) + 1
    return _passed[name] == int(nth or 1)


def point(name: str) -> None:
    """SIGKILL this process if ATENTO_FAULT asks for `name` at this passage."""
    if _due(name):
        os.kill(os.getpid(), signal.SIGKILL)


def disk_full(name: str) -> None:
    """Raise OSError(ENOSPC) if ATENTO_FAULT asks for `name` at this passage."""
    if _due(name):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
