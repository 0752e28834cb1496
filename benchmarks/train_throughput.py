"""Steady-state training throughput (target tokens/s) and peak memory of an atento config.

    python benchmarks/train_throughput.py configs/multi30k_fr_en_rnn.yaml \
        data.dir=../shared/data/multi30k --seconds 180 --skip 30

Trains for `--seconds` of wall time on the configured data (no validation), ignores the
first `--skip` seconds (start-up, allocator warm-up), and prints one JSON line: real target
tokens per second (EOS included, padding excluded, as OpenNMT-py counts them), updates, target
tokens per update, and peak resident memory. Process settings (threads, allocator, kernel cache)
are applied from the config's `runtime` section as `atento train` does. Run it on an otherwise
idle machine.

With `runtime.compile=on` the steady state starts `--skip` seconds after the last step that
compiled something (so the window never holds a compilation, however long it took), and the
line adds the compile figures (`compile_graphs`, `compile_seconds`: dynamo's count;
`compile_step_seconds`: the wall time of the steps that compiled) and
`tokens_per_second_with_compile`: every token over every second from the first step on,
compilation included. `benchmarks/compile_ab.py` runs it with compiling off and on in rounds.

A step in which `runtime.linear_kernel=auto` measured the kernels of a new (shape, size class
of rows) (`atento.kernels`, once per machine: later runs read kernels.json) is left out of the
window with its tokens; the line gives their number and seconds (`kernel_measuring_steps`,
`kernel_measuring_seconds`). A run on a machine without kernels.json measures in its first
minutes, on the steps that meet a new shape.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from timing import benchmark_trainer  # noqa: E402

from atento import kernels  # noqa: E402
from atento.models.factory import count_parameters  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--skip", type=float, default=30.0)
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    with benchmark_trainer(args.config, args.overrides) as trainer:
        placement = trainer.placement
        start = time.perf_counter()
        tokens = updates = all_tokens = 0
        measuring_steps, measuring_seconds, left_out = 0, 0.0, 0.0
        measured_from = None
        warm_from = start  # the end of the last step that compiled something
        epoch = 0
        while time.perf_counter() - start < args.seconds:
            for idx in trainer.task.batch_plan(epoch):
                batch = trainer.task.collate(idx).to(placement.device)
                graphs, known = trainer.compiler.graphs, kernels.measurements()
                tick = time.perf_counter()
                _, count = trainer.train_step(batch)
                now = time.perf_counter()
                all_tokens += count
                if trainer.compiler.graphs != graphs:  # compiled: the steady state starts later
                    warm_from, measured_from, tokens, updates = now, None, 0, 0
                    left_out = 0.0
                elif kernels.measurements() != known:  # measured kernels: not steady state
                    measuring_steps += 1
                    measuring_seconds += now - tick
                    if measured_from is not None:
                        left_out += now - tick
                elif measured_from is None and now - warm_from >= args.skip:
                    measured_from = now
                elif measured_from is not None:
                    tokens += count
                    updates += 1
                if now - start >= args.seconds:
                    break
            epoch += 1
        end = time.perf_counter()
        seconds = end - measured_from - left_out if measured_from is not None else float("nan")
        compiled = trainer.compiler.summary()
    row = {
        "label": args.label or Path(args.config).stem,
        "target_tokens_per_second": round(tokens / seconds, 1),
        "updates": updates,
        "target_tokens_per_update": round(tokens / max(updates, 1), 1),
        "measured_seconds": round(seconds, 1),
        "tokens_per_second_with_compile": round(all_tokens / (end - start), 1),
        **compiled,
        "kernel_measuring_steps": measuring_steps,
        "kernel_measuring_seconds": round(measuring_seconds, 1),
        "parameters": count_parameters(trainer.model),
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "threads": torch.get_num_threads(),
        "precision": placement.precision,
        "overrides": args.overrides,
    }
    print(json.dumps(row))


if __name__ == "__main__":
    main()
