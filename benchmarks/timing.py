"""Helpers shared by the benchmarks: the micro-benchmarks' timer (`attention_train.py`,
`dropout_mask.py`) and the training benchmarks' trainer (`train_throughput.py`,
`profile_train_step.py`, `paired_ab.py`, `step_memory.py`). Import after putting `src` on
sys.path."""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    """The median wall time of `repeats` calls of fn in ms, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


@contextlib.contextmanager
def benchmark_trainer(config: str, overrides: list[str]) -> Iterator:
    """A `Trainer` of CONFIG with OVERRIDES and no validation, in a temporary run directory,
    the process set up as `atento train` sets it (threads, allocator, kernel caches, linear
    kernel). Its placement is `trainer.placement`."""
    from atento.cli.common import start_runtime
    from atento.config_io import load_config
    from atento.registry import placement_for
    from atento.training.loop import Trainer

    cfg = load_config(config, [*overrides, "train.valid_every=0"])
    placement = placement_for(cfg)
    start_runtime(cfg.runtime, placement, training=True)
    with tempfile.TemporaryDirectory() as tmp:
        yield Trainer(cfg, Path(tmp) / "run", progress=False, placement=placement)
