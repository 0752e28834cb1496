"""Resident memory of a training run over time: `atento train` in a child process, its RSS read
from /proc every `--every` seconds, printed as a timeline with the peak (issue 24's bf16 memory).

    python benchmarks/train_rss.py --minutes 30 --every 30 -- \
        configs/multi30k_fr_en_transformer.yaml data.dir=../shared/data/multi30k \
        runtime.precision=bf16

The run goes into a temporary directory (removed afterwards) unless `--out` names one. The
last line is JSON: the samples (seconds, MiB), the peak and the run's own `peak_memory_mb`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=30.0, help="train.max_minutes of the run")
    p.add_argument("--every", type=float, default=30.0, help="seconds between RSS samples")
    p.add_argument("--out", type=Path, help="keep the run here (default: a temporary directory)")
    p.add_argument("train_args", nargs="+", help="CONFIG [overrides] for `atento train`")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.out or Path(tmp) / "run"
        cmd = [sys.executable, "-m", "atento", "train", *args.train_args,
               f"train.max_minutes={args.minutes}", "--out", str(run_dir)]  # fmt: skip
        start = time.monotonic()
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        samples = []
        while child.poll() is None:
            value = rss_mib(child.pid)
            if value is not None:
                samples.append((round(time.monotonic() - start, 1), round(value, 1)))
                print(f"{samples[-1][0]:8.1f} s  {samples[-1][1]:8.1f} MiB", flush=True)
            time.sleep(args.every)
        out = child.stdout.read() if child.stdout else ""
        final = {}
        for line in reversed(out.splitlines()):
            if line.startswith("{"):
                final = json.loads(line)
                break
    print(json.dumps({"samples": samples, "peak_sampled_mib": max(v for _, v in samples),
                      "peak_memory_mb": final.get("peak_memory_mb"), "steps": final.get("steps"),
                      "returncode": child.returncode}))  # fmt: skip
    return child.returncode


if __name__ == "__main__":
    raise SystemExit(main())
