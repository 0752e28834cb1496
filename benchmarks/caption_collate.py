"""Time a captioning batch's collation with the features read from the split's pack file
(`PackedFeatures`, pread of the batch's rows) against the same features held in memory as one
fp16 tensor (the representation before the pack), alternating batch by batch in one process.

    python benchmarks/caption_collate.py configs/flickr8k_caption.yaml [--batches 300]

The training loop's tokens/s times the training step only, not the collation that precedes
it, so this is the number that says whether reading rows from the file slows training. Prints
one JSON line: milliseconds per batch (median and mean) of each, whether every batch was equal,
and the same for a third reader, `np.memmap` of the pack file, with the growth of this
process's RssFile over the epoch (memory-mapped pages count in RSS once touched; pread's
stay in the page cache, outside RSS).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from atento.config_io import load_config  # noqa: E402
from atento.registry import task_class  # noqa: E402


def rss_file_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("RssFile:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.overrides)
    task = task_class(cfg.task)(cfg, log=lambda *_: None)
    task.prepare(None, None)
    packed = task.train_feats
    memory = torch.stack(list(packed))  # (N, P, C) fp16 in memory, as before the pack
    warnings.filterwarnings("ignore", "The given NumPy array is not writable")
    mapped = torch.from_numpy(np.memmap(packed.file, np.float16, "r", shape=packed.shape))
    plan = task.batch_plan(0)[: args.batches]
    times: dict[str, list[float]] = {"pack": [], "memory": [], "mmap": []}
    equal = True
    rss_file = rss_file_mb()
    for indices in plan:
        out = {}
        for name, feats in (("pack", packed), ("memory", memory), ("mmap", mapped)):
            task.train_feats = feats
            start = time.perf_counter()
            out[name] = task.collate(indices)
            times[name].append(time.perf_counter() - start)
        equal = equal and torch.equal(out["pack"].features, out["memory"].features)
        equal = equal and torch.equal(out["mmap"].features, out["memory"].features)
    row = {"batches": len(plan), "rows_per_batch": round(sum(map(len, plan)) / len(plan), 1),
           "equal": equal, "threads": args.threads,
           "mmap_rss_file_growth_mb": round(rss_file_mb() - rss_file, 1)}  # fmt: skip
    for name, t in times.items():
        row[f"{name}_ms_median"] = round(1000 * statistics.median(t), 2)
        row[f"{name}_ms_mean"] = round(1000 * statistics.fmean(t), 2)
    print(json.dumps(row))


if __name__ == "__main__":
    main()
