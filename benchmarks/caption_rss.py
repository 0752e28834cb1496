"""Where a captioning run's resident memory goes: `atento train` in this process, with a thread
that reads /proc/self/status every --interval seconds and tags each sample with the phase the
run is in (tokenizer, reading the features, model, first steps, steps, validation, saving).

    python benchmarks/caption_rss.py configs/flickr8k_caption.yaml train.max_steps=300 \
        train.max_minutes=0 --out runs/cap_rss_phases [--interval 0.1] [--timeline FILE]

Prints one table row per phase: seconds, and at the end of the phase VmHWM (the kernel's exact
peak so far, so the phase where it rises is where the peak happened, whatever the sampling
rate), and the sampled maximum of VmRSS with its RssAnon (heap, tensors) and RssFile
(file-backed pages: shared libraries, memory-mapped files) parts. VmRSS = RssAnon + RssFile +
RssShmem. `/usr/bin/time -v`'s "Maximum resident set size" is VmHWM of the whole process.
Phases are marked by wrapping the task's and the trainer's methods; nothing else changes.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

FIELDS = ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem")


def status() -> dict[str, int]:
    """The memory fields of /proc/self/status, in kB."""
    out = {}
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in FIELDS:
                out[key] = int(value.split()[0])
    return out


class Phases:
    def __init__(self) -> None:
        self.phase = "imports"
        self.start = time.perf_counter()
        self.rows: list[dict] = []  # one per phase, in order
        self.timeline: list[tuple[float, str, dict[str, int]]] = []
        self.lock = threading.Lock()
        self._open(self.phase)

    def _open(self, name: str) -> None:
        self.rows.append({"phase": name, "t0": time.perf_counter() - self.start,
                          "max": {"VmRSS": 0}})  # fmt: skip

    def sample(self) -> None:
        s = status()
        with self.lock:
            self.timeline.append((round(time.perf_counter() - self.start, 3), self.phase, s))
            row = self.rows[-1]
            if s["VmRSS"] > row["max"]["VmRSS"]:
                row["max"] = s

    def enter(self, name: str) -> str:
        self.sample()
        with self.lock:
            previous, self.phase = self.phase, name
            self.rows[-1]["end"] = status()
            self.rows[-1]["t1"] = time.perf_counter() - self.start
            self._open(name)
        return previous

    def close(self) -> None:
        self.enter("end")


def wrap(owner, attr: str, phases: Phases, name, restore: bool = True) -> None:
    """Run owner.attr inside phase `name` (a string, or a function of the call's arguments)."""
    original = getattr(owner, attr)

    def wrapped(*args, **kwargs):
        label = name(*args, **kwargs) if callable(name) else name
        phases.enter(label)
        try:
            return original(*args, **kwargs)
        finally:
            if restore:
                phases.enter(f"after {label}")

    setattr(owner, attr, wrapped)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--timeline", help="write every sample (JSON lines) here")
    args, rest = parser.parse_known_args()
    phases = Phases()
    stop = threading.Event()

    def sampler() -> None:
        while not stop.wait(args.interval):
            phases.sample()

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()

    from atento.cli.main import main as atento_main
    from atento.tasks import captioning
    from atento.training import loop, run_files

    task = captioning.CaptionTask
    wrap(task, "_build_tokenizer", phases, "tokenizer")
    wrap(task, "features", phases, lambda self, images, what: f"features: {what}")
    wrap(task, "validate", phases, "validation", restore=False)
    wrap(task, "translator", phases, "validation: greedy decoding", restore=False)
    wrap(loop, "build_model", phases, "model")
    wrap(run_files, "save_checkpoint", phases, "save checkpoint")
    step_fn = loop.Trainer.train_step
    steps = [0]

    def train_step(self, batches):
        steps[0] += 1
        if steps[0] == 1:
            phases.enter("steps 1-10")
        elif steps[0] == 11:
            phases.enter("steps 11-")
        return step_fn(self, batches)

    loop.Trainer.train_step = train_step
    phases.enter("cli, config, prepare")
    code = atento_main(["train", *rest])
    phases.close()
    stop.set()
    thread.join()
    mib = 1024
    print(f"{'phase':42s} {'s':>6s} {'VmHWM@end':>10s} {'max VmRSS':>10s} {'RssAnon':>8s} "
          f"{'RssFile':>8s}  (MiB)")  # fmt: skip
    for row in phases.rows[:-1]:
        if "end" not in row:
            continue
        m = row["max"]
        print(f"{row['phase'][:42]:42s} {row['t1'] - row['t0']:6.1f} "
              f"{row['end']['VmHWM'] / mib:10.0f} {m['VmRSS'] / mib:10.0f} "
              f"{m.get('RssAnon', 0) / mib:8.0f} {m.get('RssFile', 0) / mib:8.0f}")  # fmt: skip
    final = status()
    print(f"peak (VmHWM): {final['VmHWM'] / mib:.0f} MiB = {final['VmHWM'] / 2**20:.3f} GiB")
    if args.timeline:
        with open(args.timeline, "w", encoding="utf-8") as handle:
            for t, phase, s in phases.timeline:
                handle.write(json.dumps({"t": t, "phase": phase, **s}) + "\n")
    sys.exit(code)


if __name__ == "__main__":
    main()
