"""Training speed with `runtime.compile` off and on, side by side in alternating rounds.

    python benchmarks/compile_ab.py configs/multi30k_fr_en_transformer.yaml \
        data.dir=../shared/data/multi30k runtime.precision=fp32 --rounds 2 --seconds 240 --skip 20

Each variant (default: `off`, `on` = the whole forward, `layers` = the encoder / decoder
layers; `--variant NAME='k=v k=v'` defines more, e.g. `--variant fused='runtime.compile=off
train.fused_output=true' --variants off,on,fused`) is one `benchmarks/train_throughput.py`
process per round, in the order given in odd rounds and reversed in even ones (so that no side
always runs first). Each run's JSON line goes to `--out` (default
`benchmarks/results/compile_ab_<config>.jsonl`), and the table gives per variant the medians of:
steady-state target tokens/s (after the last compiling step and `--skip` seconds), tokens/s
over the whole run with the compilation included, and the wall seconds of the compiling steps;
the ratio is against `off`. Every run starts from an empty inductor cache
(`TORCHINDUCTOR_CACHE_DIR` in a fresh folder: a first run's cost) unless `--warm-cache`.
`--seconds` must leave a steady-state window after the compilation (~1-2 minutes on 2 cores
for the Transformer). Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIANTS = {
    "off": ["runtime.compile=off"],
    "on": ["runtime.compile=on", "runtime.compile_scope=model"],
    "layers": ["runtime.compile=on", "runtime.compile_scope=layers"],
}


def run_one(args: argparse.Namespace, name: str, round_: int) -> dict:
    """One train_throughput.py process for variant `name`; its JSON line."""
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as cache:
        if not args.warm_cache:
            env["TORCHINDUCTOR_CACHE_DIR"] = cache
        cmd = [sys.executable, str(HERE / "train_throughput.py"), args.config, *args.overrides,
               *VARIANTS[name], "--seconds", str(args.seconds), "--skip", str(args.skip),
               "--label", f"{name} round {round_}"]  # fmt: skip
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-3:]
        raise SystemExit(f"compile_ab: {name} failed (exit {done.returncode}): {' | '.join(tail)}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    row.update(variant=name, round=round_)
    return row


def table(rows: list[dict], names: list[str]) -> str:
    """Medians per variant, ratios against `off` (or the first variant)."""

    def med(name: str, key: str) -> float:
        values = [r[key] for r in rows if r["variant"] == name and r.get(key) is not None]
        return statistics.median(values) if values else float("nan")

    base = "off" if "off" in names else names[0]
    ref = med(base, "target_tokens_per_second")
    lines = [f"{'variant':<8} {'steady tok/s':>13} {'vs ' + base:>8} {'tok/s incl. compile':>20} "
             f"{'compile s':>10} {'graphs':>7} {'peak MB':>8}"]  # fmt: skip
    for name in names:
        steady = med(name, "target_tokens_per_second")
        lines.append(
            f"{name:<8} {steady:>13.1f} {steady / ref:>8.3f} "
            f"{med(name, 'tokens_per_second_with_compile'):>20.1f} "
            f"{med(name, 'compile_step_seconds'):>10.1f} {med(name, 'compile_graphs'):>7.0f} "
            f"{med(name, 'peak_memory_mb'):>8.0f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--variants", default="off,on,layers", help="of: " + ", ".join(VARIANTS))
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=OVERRIDES",
                        help="define a variant, e.g. fused='runtime.compile=off "
                        "train.fused_output=true' (then name it in --variants)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=240.0)
    parser.add_argument("--skip", type=float, default=20.0)
    parser.add_argument("--warm-cache", action="store_true", help="share inductor's disk cache")
    parser.add_argument("--out", help="JSON lines (default: benchmarks/results/...)")
    args = parser.parse_args()
    for item in args.variant:
        name, _, overrides = item.partition("=")
        if not name or not overrides:
            raise SystemExit(f"compile_ab: --variant {item!r} is not NAME=OVERRIDES")
        VARIANTS[name] = overrides.split()
    names = [n for n in args.variants.split(",") if n]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        raise SystemExit(f"compile_ab: unknown variant(s) {unknown} (use {', '.join(VARIANTS)})")
    out = Path(args.out or HERE / "results" / f"compile_ab_{Path(args.config).stem}.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    head = (f"# {args.config} {' '.join(args.overrides)}; {args.rounds} rounds of "
            f"{args.seconds:.0f} s (skip {args.skip:.0f} s); {platform.processor() or ''} "
            f"{os.cpu_count()} CPUs; cold inductor cache: {not args.warm_cache}")  # fmt: skip
    print(head, flush=True)
    rows = []
    with out.open("w") as f:
        for r in range(1, args.rounds + 1):
            for name in names if r % 2 else names[::-1]:
                row = run_one(args, name, r)
                rows.append(row)
                f.write(json.dumps(row) + "\n")
                f.flush()
                print(json.dumps(row), flush=True)
    print(table(rows, names))


if __name__ == "__main__":
    main()
