"""Where a training step's memory goes: the bytes autograd saves for the backward, per line of
code, on the batch with the most tokens, then the peak RSS over the same batches (the 12 with
the most tokens, then 12 drawn with a fixed seed).

    python benchmarks/step_memory.py configs/multi30k_fr_en_transformer.yaml \\
        data.dir=../shared/data/multi30k runtime.precision=fp32 [--fuse-relu off]

`--fuse-relu off` gives the feed-forward's ReLU and dropout as two autograd steps (the path
before `nn.dropout.relu_dropout`). The peak is the process's (ru_maxrss), so compare settings
in separate processes. Prints the table, then one JSON line.
"""

from __future__ import annotations

import argparse
import collections
import json
import resource
import sys
import traceback
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from timing import benchmark_trainer  # noqa: E402

from atento.nn.feedforward import PositionwiseFeedForward  # noqa: E402
from atento.runtime import cpu_features  # noqa: E402


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def where(frames: list[traceback.FrameSummary]) -> str:
    """The innermost atento (or torch.nn.functional) line of the stack: who saved it."""
    ours = [f for f in frames if "/atento/" in f.filename or "nn/functional" in f.filename]
    if not ours:
        return "?"
    f = ours[-1]
    return f"{Path(f.filename).name}:{f.lineno} {(f.line or '').strip()[:60]}"


def saved_by_line(trainer, batch) -> tuple[int, collections.Counter, collections.Counter]:
    """Bytes of the distinct storages autograd saves in one forward + loss, by line."""
    seen: set[int] = set()
    nbytes: collections.Counter = collections.Counter()
    count: collections.Counter = collections.Counter()

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            line = where(traceback.extract_stack()[:-1])
            nbytes[line] += storage.nbytes()
            count[line] += 1
        return t

    trainer.model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with trainer.placement.autocast():
            outputs = trainer.task.forward(trainer.model, batch)
        trainer.task.loss(outputs, batch)
    return sum(nbytes.values()), nbytes, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--fuse-relu", choices=("on", "off"), default="on")
    parser.add_argument("--batches", type=int, default=12, help="largest, then as many random")
    parser.add_argument("--top", type=int, default=12, help="lines of the table")
    args = parser.parse_args()
    PositionwiseFeedForward.fuse_relu = args.fuse_relu == "on"
    with benchmark_trainer(args.config, args.overrides) as trainer:
        device = trainer.placement.device
        plan = list(trainer.task.batch_plan(0))
        batches = [trainer.task.collate(i) for i in plan]
        tokens = [sum(v.numel() for v in vars(b).values() if torch.is_tensor(v)) for b in batches]
        order = list(np.argsort(tokens)[::-1][: args.batches])
        rng = np.random.default_rng(0)
        order += list(rng.choice(len(batches), min(args.batches, len(batches)), replace=False))
        total, nbytes, count = saved_by_line(trainer, batches[order[0]].to(device))
        print(f"saved for the backward on the largest batch: {total / 2**20:.1f} MiB")
        for line, n in nbytes.most_common(args.top):
            print(f"{n / 2**20:9.1f} MiB {count[line]:4d} tensors  {line}")
        start = peak_mib()
        for k in order:
            trainer.train_step(batches[k].to(device))
        row = {
            "config": Path(args.config).stem,
            "fuse_relu": args.fuse_relu,
            "saved_mib": round(total / 2**20, 1),
            "peak_before_steps_mib": round(start, 1),
            "peak_mib": round(peak_mib(), 1),
            "steps": len(order),
            "precision": trainer.placement.precision,
            "cpu_flags": cpu_features(),
            "overrides": args.overrides,
        }
    print(json.dumps(row))


if __name__ == "__main__":
    main()
