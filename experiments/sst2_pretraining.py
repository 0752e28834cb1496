"""Does pretraining help? SST-2 and TREC-6 accuracy of a bag-of-words logistic regression, the
small Transformer encoder from scratch, and the same encoder after MLM pretraining (and a GPT
after LM pretraining, for SST-2) at the same total wall-clock budget, three seeds each (the
GPT: --gpt-seeds, run last).

    .venv/bin/python experiments/sst2_pretraining.py [--sst2-minutes 2] [--trec-minutes 1.5]
        [--seeds 1 2 3] [--gpt-seeds 1] [--only sst2|trec] [--runs DIR] [--out FILE]
        [--pretrain-share 0.5] [--pretrain-set KEY=VALUE ...] [--valid-every N]

Budget B per run: "scratch" trains the classifier for B minutes; "mlm" pretrains for s B
(s = --pretrain-share; `configs/*_mlm.yaml`: the training split's sentences, validation
sentences excluded, plus the --pretrain-set overrides, e.g. data.drop_contained=true) and
fine-tunes for (1 - s) B; "gpt" pretrains a language model (`configs/sst2_gpt_lm.yaml`, the
same text) for s B and fine-tunes it with the auxiliary LM loss for (1 - s) B. Pretraining
runs once per seed, so every seed pays for its own. Each `atento train` runs under
`flock /tmp/atento-heavy.lock` (the machine is shared). Accuracy is on the validation file
(SST-2: sentence_split/valid.tsv, 1,000 whole sentences none of whose phrases is trained on;
TREC valid.label): the last validation (primary: nothing selected on the validation set) and
the best one. Results: benchmarks/results/sst2_trec.txt (+ .jsonl); runs in runs/exp_cls/.
Tables dated before 2026-12-06 were taken on SST-2's random split valid.tsv (mostly phrases
of sentences still in train.tsv), which overstates accuracy by about 10 points.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from cls_common import DATA, ROOT, NotRun, bag_of_words, cpu_flags, cpu_model
from cls_common import train as train_run

RUNS = Path("runs/exp_cls")
OUT = Path("benchmarks/results/sst2_trec")
SUMMARIZE = False
PRETRAIN_SHARE = 0.5
PRETRAIN_SET: list[str] = []  # overrides of the pretraining runs
VALID_EVERY: list[str] = []  # train.valid_every=N for every Transformer run, when given


def split_budget(minutes: float) -> tuple[float, float]:
    """(pretraining, fine-tuning) minutes of a pretrained run's budget."""
    pre = round(minutes * PRETRAIN_SHARE, 4)
    return pre, round(minutes - pre, 4)


def train(config: str, out: Path, overrides: list[str], log) -> dict:
    """One `atento train` (cls_common.train); --summarize: read back, start nothing."""
    return train_run(config, out, overrides, log, summarize=SUMMARIZE)


def run_dataset(name: str, minutes: float, seeds: list[int], log) -> list[dict]:
    """Bag-of-words, then scratch and MLM + fine-tuning for each seed."""
    pre_min, ft_min = split_budget(minutes)
    rows: list[dict] = []
    bow = bag_of_words(*DATA[name])
    rows.append({"data": name, "method": "bow-logreg", "seed": 0, **bow})
    log(f"{name} bag-of-words: {bow}")
    for seed in seeds:
        common = [f"train.seed={seed}", *VALID_EVERY]
        try:
            scratch = ["model.init_from=", f"train.max_minutes={minutes}", *common]
            r = train(f"configs/{name}_bert.yaml", RUNS / f"{name}_scratch_s{seed}", scratch, log)
            rows.append(_row(name, "scratch", seed, [r]))
            log(json.dumps(rows[-1]))
            pre = RUNS / f"{name}_mlm_s{seed}"
            p = train(f"configs/{name}_mlm.yaml", pre,
                      [f"train.max_minutes={pre_min}", *common, *PRETRAIN_SET], log)  # fmt: skip
            tuned = [f"model.init_from={pre}", f"train.max_minutes={ft_min}", *common]
            f = train(f"configs/{name}_bert.yaml", RUNS / f"{name}_mlm_ft_s{seed}", tuned, log)
            rows.append(_row(name, "mlm+finetune", seed, [p, f]))
            log(json.dumps(rows[-1]))
        except NotRun as exc:
            log(f"not run yet: {exc}")
    return rows


def run_gpt(minutes: float, seeds: list[int], log) -> list[dict]:
    """SST-2: GPT LM pretraining for a share of the budget, fine-tuning (+ LM loss) for the
    rest."""
    (pre_min, ft_min), rows = split_budget(minutes), []
    for seed in seeds:
        common = [f"train.seed={seed}", *VALID_EVERY]
        pre = RUNS / f"sst2_gpt_lm_s{seed}"
        try:
            p = train("configs/sst2_gpt_lm.yaml", pre,
                      [f"train.max_minutes={pre_min}", *common, *PRETRAIN_SET], log)  # fmt: skip
            tuned = [f"model.init_from={pre}", f"train.max_minutes={ft_min}", *common]
            f = train("configs/sst2_gpt.yaml", RUNS / f"sst2_gpt_ft_s{seed}", tuned, log)
        except NotRun as exc:
            log(f"not run yet: {exc}")
            continue
        rows.append(_row("sst2", "gpt-lm+finetune", seed, [p, f]))
        log(json.dumps(rows[-1]))
    return rows


def _row(name: str, method: str, seed: int, results: list[dict]) -> dict:
    final, offset = results[-1], sum(r["seconds"] for r in results[:-1])
    return {
        "data": name, "method": method, "seed": seed,
        "accuracy": final["last"]["accuracy"], "macro_f1": final["last"]["macro_f1"],
        "best_accuracy": final["best_score"],
        "steps": [r["steps"] for r in results],
        "train_seconds": [r["seconds"] for r in results],
        "wall_seconds": round(sum(r["wall_seconds"] for r in results), 1),
        "steps_per_second": [round(r["steps"] / max(r["seconds"], 1e-9), 2) for r in results],
        "pretrain_valid": results[0]["last"] if len(results) > 1 else None,
        # (minutes from the start of the run, validation accuracy), pretraining included
        "curve": [[round((offset + s) / 60, 3), a] for s, a in final["curve"]],
    }  # fmt: skip


def plot(rows: list[dict], name: str, path: Path) -> None:
    """Validation accuracy against wall-clock minutes, every seed: from scratch, and MLM +
    fine-tuning (its curve starts when its pretraining ends); bag-of-words as a line."""
    sys.path.insert(0, str(ROOT / "src"))
    from atento.analysis.plotting import plt, save_figure

    fig, ax = plt.subplots(figsize=(7, 4.2))
    first = min((r["seed"] for r in rows if r["method"] == "scratch"), default=0)
    for r in rows:
        if r["data"] != name or r["method"] not in ("scratch", "mlm+finetune"):
            continue
        seed, scratch = r["seed"], r["method"] == "scratch"
        x, y = [m for m, _ in r["curve"]], [a for _, a in r["curve"]]
        ax.plot(x, y, color="tab:blue" if scratch else "tab:orange", alpha=0.8, marker=".",
                label=("from scratch" if scratch else "MLM pretraining + fine-tuning")
                if seed == first else None)  # fmt: skip
        if not scratch:
            ax.axvline(r["train_seconds"][0] / 60, color="tab:orange", lw=0.5, ls=":")
    for r in rows:
        if r["data"] == name and r["method"] == "bow-logreg":
            ax.axhline(r["accuracy"], color="k", ls="--", label="bag-of-words logistic regression")
    ax.set_xlabel("wall-clock minutes (pretraining included)")
    ax.set_ylabel(f"{name} validation accuracy")
    ax.set_ylim(0.6, 0.95)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    save_figure(fig, path)


def summary(rows: list[dict], args) -> str:
    lines = [
        "SST-2 / TREC-6 validation accuracy: bag-of-words vs Transformer from scratch vs "
        "pretrained + fine-tuned, same total wall-clock budget per run",
        f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"cpu: {cpu_model()}; flags: {cpu_flags()}; torch threads: default (2 cores)",
        f"budgets: SST-2 {args.sst2_minutes} min per run, TREC {args.trec_minutes} min per run "
        f"(pretrained: {PRETRAIN_SHARE:g} of it pretraining, the rest fine-tuning); seeds "
        + ", ".join(map(str, args.seeds))
        + (f"; pretraining overrides: {' '.join(PRETRAIN_SET)}" if PRETRAIN_SET else ""),
        "SST-2 split: sentence_split/ (whole validation sentences, their phrases not trained "
        "on); pretraining text: its train.tsv sentences minus those in valid.tsv; "
        "TREC train.label questions minus those in valid.label; nothing downloaded",
        "accuracy = the last validation of each run (best = its best validation); "
        "wall = config written to last checkpoint (tokenizer training, validations and "
        "checkpoints included; the wait for the shared lock and Python start-up not)",
        "",
        f"{'data':5} {'method':16} {'accuracy mean +- sd (min..max)':34} {'best':8} "
        f"{'steps (pre+ft)':16} {'wall s/run':10}",
    ]
    for data in ("sst2", "trec"):
        for method in ("bow-logreg", "scratch", "mlm+finetune", "gpt-lm+finetune"):
            group = [r for r in rows if r["data"] == data and r["method"] == method]
            if not group:
                continue
            acc = [r["accuracy"] for r in group]
            sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
            best = [r.get("best_accuracy", r["accuracy"]) for r in group]
            steps = "/".join("+".join(map(str, r.get("steps", []))) or "-" for r in group)
            wall = statistics.mean(r["wall_seconds"] for r in group)
            lines.append(
                f"{data:5} {method:16} {statistics.mean(acc):.4f} +- {sd:.4f} "
                f"({min(acc):.4f}..{max(acc):.4f})    {statistics.mean(best):.4f}   "
                f"{steps:16} {wall:8.0f}"
            )
    lines += ["", f"per run (JSON lines in {Path(args.out).name}.jsonl)"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sst2-minutes", type=float, default=2.0)
    parser.add_argument("--trec-minutes", type=float, default=1.5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument(
        "--gpt-seeds",
        type=int,
        nargs="*",
        default=[1],
        help="seeds of the GPT comparison on SST-2, run last (none: skip)",
    )
    parser.add_argument("--only", choices=("sst2", "trec"))
    parser.add_argument("--out", default=str(OUT),
                        help="results: OUT.txt and OUT.jsonl (default: %(default)s)")  # fmt: skip
    parser.add_argument("--runs", default="runs/exp_cls",
                        help="run directories (finished runs are read back)")  # fmt: skip
    parser.add_argument("--pretrain-share", type=float, default=0.5,
                        help="share of a pretrained run's budget spent pretraining")  # fmt: skip
    parser.add_argument("--pretrain-set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides of the pretraining runs")  # fmt: skip
    parser.add_argument("--valid-every", type=int, help="train.valid_every of every run")
    parser.add_argument("--summarize", action="store_true",
                        help="start no run: the table of the runs finished so far")  # fmt: skip
    args = parser.parse_args()
    global SUMMARIZE, RUNS, PRETRAIN_SHARE, PRETRAIN_SET, VALID_EVERY
    SUMMARIZE, RUNS = args.summarize, Path(args.runs)
    if not 0.0 < args.pretrain_share < 1.0:
        parser.error("--pretrain-share must be in (0, 1)")
    PRETRAIN_SHARE, PRETRAIN_SET = args.pretrain_share, list(args.pretrain_set)
    VALID_EVERY = [f"train.valid_every={args.valid_every}"] if args.valid_every else []

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    rows: list[dict] = []
    out = ROOT / args.out

    def write() -> None:
        out.with_suffix(".jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        out.with_suffix(".txt").write_text(summary(rows, args))
        if any(r["method"] == "scratch" for r in rows):
            for name in {r["data"] for r in rows}:
                plot(rows, name, out.parent / f"{out.name}_{name}.png")

    for name, minutes in (("sst2", args.sst2_minutes), ("trec", args.trec_minutes)):
        if args.only in (None, name):
            rows += run_dataset(name, minutes, args.seeds, log)
            write()
    if args.only in (None, "sst2") and args.gpt_seeds:
        rows += run_gpt(args.sst2_minutes, args.gpt_seeds, log)
        write()
    print(out.with_suffix(".txt").read_text())


if __name__ == "__main__":
    main()
