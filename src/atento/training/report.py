"""What the loop reports: the progress bar, throughput and the result of `fit`."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from atento.training.checkpointing import Progress


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    metric: str  # the task's selection metric
    best_score: float | None
    seconds: float
    tokens_per_second: float
    parameters: int
    peak_memory_mb: float  # host
    peak_device_memory_mb: float | None  # CUDA only
    device: str
    precision: str
    world_size: int
    stopped_by: str


def throughput(state: Progress) -> float:
    """Loss units (the task's count: target tokens, sentences) per second of training steps."""
    return round(state.train_tokens / max(state.train_seconds, 1e-9), 1)


def progress_bar(state: Progress, max_steps: int, *, enabled: bool) -> tqdm:
    """Steps taken (of train.max_steps when set); sparse updates when stderr is not a terminal."""
    return tqdm(total=max_steps or None, initial=state.step, desc="training", unit="step",
                disable=not enabled, dynamic_ncols=True,
                mininterval=0.5 if sys.stderr.isatty() else 30.0)  # fmt: skip
