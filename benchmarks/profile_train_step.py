"""Where a training step's CPU time goes: torch.profiler over real training steps, per operator.

    python benchmarks/profile_train_step.py configs/multi30k_fr_en_transformer.yaml \
        data.dir=../shared/data/multi30k runtime.precision=fp32 --warmup 20 --steps 30

Builds the trainer as `atento train` does (process settings from the config's `runtime`
section, the real batches of the config's data, no validation), takes `--warmup` steps
unrecorded (allocator, kernel caches and, with `runtime.compile=on`, the compilation), then
records `--steps` steps and prints the operators by self CPU time: each one's share of the
recorded self time, grouped into matrix products (mm, addmm, bmm, ...), fused attention
kernels, recurrent kernels (GRU / LSTM), compiled regions (`runtime.compile`) and everything
else, and the optimizer step's share (its operators included). The same table goes to `--out`
(default `benchmarks/results/profile_<config>_<precision>.txt`). Shares are roughly meaningful
on a busy machine; absolute times only on an idle one.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from timing import benchmark_trainer  # noqa: E402

from atento.runtime import cpu_features  # noqa: E402
from atento.training.loop import Trainer  # noqa: E402

MATMUL = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addbmm",
          "aten::mv", "aten::addmv", "aten::dot", "aten::_addmm_activation",
          "aten::mkldnn_linear", "aten::_mkl_linear", "mkldnn::_linear_pointwise"}  # fmt: skip


def group(name: str) -> str:
    """The group of an operator: what the profile is read by."""
    if name in MATMUL or "gemm" in name.lower():
        return "matrix products"
    if "scaled_dot_product" in name:
        return "fused attention"
    if any(k in name for k in ("rnn", "gru", "lstm")):
        return "recurrent kernels"
    if "Compiled" in name or name.startswith(("cpp_fused", "CompiledFunction", "## Call")):
        return "compiled regions"
    return "everything else"


def steps(trainer: Trainer, n: int, plan_state: dict) -> list[float]:
    """`n` training steps on the next batches of the plan; the seconds of each."""
    times = []
    while len(times) < n:
        if not plan_state["plan"]:
            plan_state["epoch"] += 1
            plan_state["plan"] = list(trainer.task.batch_plan(plan_state["epoch"]))
        idx = plan_state["plan"].pop(0)
        batch = trainer.task.collate(idx).to(trainer.placement.device)
        tick = time.perf_counter()
        trainer.train_step(batch)
        times.append(time.perf_counter() - tick)
    return times


def table(prof, top: int) -> tuple[str, dict[str, float]]:
    """The operators by self CPU time (share of the total) and the shares of the groups."""
    events = prof.key_averages()
    rows = [(e.key, e.self_cpu_time_total, e.count) for e in events]
    rows = [r for r in rows if r[1] > 0 and not r[0].startswith("ProfilerStep")]
    rows.sort(key=lambda r: -r[1])
    total = sum(r[1] for r in rows) or 1.0
    groups: dict[str, float] = {}
    for name, us, _ in rows:
        groups[group(name)] = groups.get(group(name), 0.0) + us / total
    # the optimiser's step with everything it calls (its operators are in the groups above too)
    step = sum(e.cpu_time_total for e in events if e.key.startswith("Optimizer.step"))
    groups["(of which the optimizer step)"] = step / total  # printed last
    lines = [f"{'operator':<58} {'group':<18} {'self ms':>10} {'share':>7} {'calls':>7}"]
    for name, us, count in rows[:top]:
        lines.append(f"{name[:58]:<58} {group(name):<18} {us / 1000:>10.1f} "
                     f"{100 * us / total:>6.1f}% {count:>7}")  # fmt: skip
    return "\n".join(lines), groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--warmup", type=int, default=20, help="unrecorded steps first")
    parser.add_argument("--steps", type=int, default=30, help="recorded steps")
    parser.add_argument("--top", type=int, default=40, help="operators listed")
    parser.add_argument("--out", help="file for the table (default: benchmarks/results/...)")
    args = parser.parse_args()
    with benchmark_trainer(args.config, args.overrides) as trainer:
        placement = trainer.placement
        state = {"epoch": 0, "plan": list(trainer.task.batch_plan(0))}
        warm = steps(trainer, args.warmup, state)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            timed = steps(trainer, args.steps, state)
        text, groups = table(prof, args.top)
        compiled = {"": trainer.compiler.describe(), **trainer.compiler.summary()}
    head = [
        f"config {args.config} {' '.join(args.overrides)}",
        f"precision {placement.precision}, threads {torch.get_num_threads()}, CPU features "
        f"{cpu_features()}, torch {torch.__version__}",
        f"warm-up {args.warmup} steps ({sum(warm):.1f} s); recorded {args.steps} steps, "
        f"{1000 * sum(timed) / len(timed):.0f} ms a step under the profiler",
    ]
    head.append(", ".join(f"{k} {v}".strip() for k, v in compiled.items() if k != "compile"))
    order = sorted(groups.items(), key=lambda g: (g[0].startswith("("), -g[1]))
    head.append("self CPU time by group: " + ", ".join(
        f"{name} {100 * share:.1f}%" for name, share in order))  # fmt: skip
    report = "\n".join([*head, "", text, ""])
    print(report)
    name = f"profile_{Path(args.config).stem}_{placement.precision}.txt"
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / name
    out.write_text(report)
    print(f"written: {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
