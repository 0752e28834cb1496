"""What the loop reports: the progress bar, throughput and the result of `fit`."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from atento.training.checkpointing import Progress
from atento.training.distributed import World


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    metric: str  # the task's selection metric
    best_score: float | None
    seconds: float
    throughput: float  # the task's loss units (`units`) per second of training steps
    parameters: int
    peak_memory_mb: float  # host
    peak_device_memory_mb: float | None  # CUDA only
    device: str
    precision: str
    world_size: int
    stopped_by: str
    units: str = "tokens"  # the task's `units`: tokens, sentences
    # runtime.compile's figures (`StepCompiler.summary`): compile on/off, graphs, seconds
    compiled: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The JSON object `atento train` prints: the fields, paths as text, the throughput
        named by its unit (`tokens_per_second`, `sentences_per_second`)."""
        out = {}
        for key, value in vars(self).items():
            if key == "compiled":
                out.update(value)
            elif key != "units":
                key = f"{self.units}_per_second" if key == "throughput" else key
                out[key] = str(value) if isinstance(value, Path) else value
        return out


def throughput(state: Progress) -> float:
    """Loss units (the task's count: target tokens, sentences) per second of training steps."""
    return round(state.train_tokens / max(state.train_seconds, 1e-9), 1)


def progress_bar(state: Progress, max_steps: int, *, enabled: bool) -> tqdm:
    """Steps taken (of train.max_steps when set); sparse updates when stderr is not a terminal."""
    return tqdm(total=max_steps or None, initial=state.step, desc="training", unit="step",
                disable=not enabled, dynamic_ncols=True,
                mininterval=0.5 if sys.stderr.isatty() else 30.0)  # fmt: skip


class ExtrasMeter:
    """The extra loss terms of the micro-batches (`LossOutput.extras`), summed where they were
    computed: adding costs no device sync, reading one per term at each validation."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor | float] = {}
        self.batches = 0

    def add(self, extras: dict[str, torch.Tensor | float]) -> None:
        for name, value in extras.items():
            value = value.detach().float() if isinstance(value, torch.Tensor) else float(value)
            self.sums[name] = self.sums[name] + value if name in self.sums else value
        self.batches += 1

    def read(self, world: World, device: torch.device) -> dict[str, float]:
        """{"train_<name>": mean over every rank's micro-batches since the last read}, then
        start again; every rank calls it (a collective under torchrun)."""
        names = sorted(self.sums)
        values = [float(self.sums[n]) for n in names]
        *totals, batches = world.sum([*values, float(self.batches)], device)
        self.sums, self.batches = {}, 0
        if not batches:
            return {}
        return {f"train_{n}": round(v / batches, 4) for n, v in zip(names, totals, strict=True)}
