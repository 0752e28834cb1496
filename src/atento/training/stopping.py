"""What ends training: the budgets of the `train` section, patience, and Ctrl-C.

    reason = budget_reached(cfg.train, state)   # None, or the name of the budget reached
    improved = record_score(task.selection, state, value)   # after each validation

The budgets are checked after every step and at the end of every epoch: `train.max_steps`
(steps taken), `train.max_epochs` (whole epochs done), `train.max_minutes` (wall-clock time of
all the run's sessions) and `train.patience` (validations in a row that did not improve the
task's selection metric: "early_stopping"). 0 switches a budget off.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from atento.config import TrainConfig
    from atento.tasks.base import Selection
    from atento.training.checkpointing import Progress


def budget_reached(train: TrainConfig, state: Progress) -> str | None:
    """The first budget `state` has used up (as `TrainResult.stopped_by` names it), or None."""
    if train.max_steps and state.step >= train.max_steps:
        return "max_steps"
    if train.max_epochs and state.epoch >= train.max_epochs:
        return "max_epochs"
    if train.max_minutes and state.elapsed >= train.max_minutes * 60:
        return "max_minutes"
    if train.patience and state.bad_validations >= train.patience:
        return "early_stopping"
    return None


def record_score(selection: Selection, state: Progress, value: float) -> bool:
    """Count a validation's value of the selection metric: True when it beats the best so far
    (it becomes `best_score` and the bad validations start again from 0); otherwise one more
    bad validation (a tie is not an improvement)."""
    improved = state.best_score is None or selection.better(value, state.best_score)
    if improved:
        state.best_score, state.bad_validations = value, 0
    else:
        state.bad_validations += 1
    return improved


@contextlib.contextmanager
def interrupts_deferred():
    """Hold Ctrl-C (SIGINT) until the block ends, then raise KeyboardInterrupt: a step and the
    counters that say it happened are never split, so the checkpoint Ctrl-C saves is exact."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            raise KeyboardInterrupt
