"""Does pretraining pay when labels are few? An SST-2 learning curve on the honest split
(`../shared/data/sst2/sentence_split/`): accuracy on its 1,000 whole validation sentences
against the number of labelled training rows, five arms:

- `pretrained`: the 4-layer encoder of `configs/sst2_mlm.yaml`, MLM-pretrained once on all of
  sentence_split/train.tsv's sentences (labels unused; `--pretrain-minutes`, seed 1, shared
  by every size and seed), then fine-tuned (`configs/sst2_bert.yaml`) on the labelled rows;
- `scratch`: the same encoder from random weights, its SentencePiece tokenizer built from the
  labelled rows (like the bag of words, it sees nothing but them);
- `birnn`: the bidirectional GRU with attention pooling of `configs/sst2_birnn.yaml`, from
  random weights like `scratch` (not in the default `--arms`);
- `birnn_pretrained`: the same BiGRU whose encoder was MLM-pretrained once
  (`configs/sst2_birnn_mlm.yaml`, the same sentences and budget as `pretrained`'s; not in the
  default `--arms`);
- `bow`: the bag-of-words logistic regression of `sst2_pretraining.py` on the same rows.

    .venv/bin/python experiments/sst2_learning_curve.py [--sizes 500 2000 8000 all]
        [--seeds 1 2 3] [--arms pretrained scratch bow] [--minutes 10 | --steps N]
        [--pretrain-minutes 60 | --pretrain-steps N] [--pretrain-set KEY=VALUE ...]
        [--set KEY=VALUE ...]
        [--runs runs/exp_curve] [--out experiments/results/sst2_learning_curve] [--summarize]
        [--dev N [--dev-seed S] [--select-every K]] [--pretrained ARM=RUN ...]

Labelled subsets: for seed s, the training rows in the order of `random.Random(s).shuffle`,
and the first N of them: nested (the 500 rows of a seed are among its 2,000), seeded, NOT
label-balanced (a plain random sample keeps the file's ~56 % positive). `all` is the whole
file. Each fine-tuning run gets the same budget, wall-clock (`--minutes`) or in updates
(`--steps`, the same on any machine and under any load; `--pretrain-steps` likewise for the
pretraining), and validates once,
at its end (`train.valid_every=0`), so the checkpoint that `atento evaluate --json` scores is
the last one: nothing is selected on the validation set. `--set` overrides go to every
`atento train` (e.g. runtime.threads=2), `--pretrain-set` to the pretraining only (default
data.drop_contained=true: each sentence read once, whole, per epoch).

`--dev N` is for choosing settings without looking at the validation set: N whole sentences of
sentence_split/train.tsv are held out the way sentence_split/ itself was made (its README:
the rows that occur inside no other row are the sentences; every row occurring inside a
held-out sentence leaves training), and every arm, the pretraining included, trains on the
rest and is scored on them (files under RUNS/dev/). Settings chosen there are then run once
on the real split.

`--dev N --select-every K` selects checkpoints on the dev split: every network arm trains on
the rows outside the N dev sentences, validates on them every K updates, and its best
checkpoint there (`checkpoint_best`, by accuracy) is what is scored on
sentence_split/valid.tsv; the bag of words trains on the same rows. `--pretrained ARM=RUN`
reuses an MLM run already made (e.g. one of another --runs folder) for ARM instead of
pretraining one; it is what it is (under --dev, one pretrained on all training sentences has
read the dev sentences' text, not their labels).

Results are appended to OUT.jsonl as each run finishes; a rerun skips the (arm, labelled
rows, seed) already there, so the curve can be filled over several sessions. OUT.txt (mean
+- sd per arm and size) and OUT.png (accuracy against labelled rows, log x, error bars =
min..max over seeds) are rewritten from the whole JSONL after every run, and by --summarize,
which starts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

from cls_common import DATA, ROOT, bag_of_words, cpu_flags, cpu_model, evaluate, metrics, train

ARMS = ("pretrained", "scratch", "birnn_pretrained", "birnn", "bow")
LABELS = {"pretrained": "Transformer encoder, MLM-pretrained",
          "scratch": "Transformer encoder from scratch",
          "birnn_pretrained": "BiGRU, attention pooling, MLM-pretrained",
          "birnn": "BiGRU, attention pooling (from scratch)",
          "bow": "bag-of-words logistic regression"}  # fmt: skip
COLORS = {"pretrained": "tab:orange", "scratch": "tab:blue", "birnn_pretrained": "tab:red",
          "birnn": "tab:green", "bow": "k"}  # fmt: skip
CONFIGS = {
    "pretrained": "configs/sst2_bert.yaml",
    "scratch": "configs/sst2_bert.yaml",
    "birnn_pretrained": "configs/sst2_birnn.yaml",
    "birnn": "configs/sst2_birnn.yaml",
}
# the arms that start from an MLM run: its config and its folder under --runs
PRETRAIN = {"pretrained": ("configs/sst2_mlm.yaml", "mlm"),
            "birnn_pretrained": ("configs/sst2_birnn_mlm.yaml", "birnn_mlm")}  # fmt: skip


def data_lines(path: Path) -> tuple[str, list[str]]:
    """The header and the data rows of a `sentence<TAB>label` file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return lines[0], [x for x in lines[1:] if x]


def subset_rows(n_rows: int, size: int, seed: int) -> list[int]:
    """The first `size` rows (0-based data-row indices, in file order) of seed `seed`'s
    shuffle of `n_rows` rows: nested across sizes, the same for every arm."""
    if not 0 < size <= n_rows:
        raise SystemExit(f"--sizes: {size} is not between 1 and the {n_rows} training rows")
    order = list(range(n_rows))
    random.Random(seed).shuffle(order)
    return sorted(order[:size])


def write_subset(train_path: Path, size: int, seed: int, out: Path) -> Path:
    """A `sentence<TAB>label` file of the labelled rows of (size, seed); the file itself for
    all its rows."""
    header, rows = data_lines(train_path)
    if size == len(rows):
        return train_path
    out.parent.mkdir(parents=True, exist_ok=True)
    chosen = subset_rows(len(rows), size, seed)
    out.write_text("\n".join([header, *(rows[i] for i in chosen)]) + "\n", encoding="utf-8")
    return out


def row_text(row: str) -> str:
    """The sentence of a `sentence<TAB>label` row, trailing spaces stripped."""
    return row.split("\t", 1)[0].strip()


def spans(text: str) -> set[str]:
    """Every run of whole tokens of `text` (the text itself included)."""
    tokens, n = text.split(), len(text.split())
    return {" ".join(tokens[i:j]) for i in range(n) for j in range(i + 1, n + 1)}


def full_sentences(rows: list[str]) -> list[str]:
    """The distinct row texts that occur inside no other row at token boundaries: SST-2's whole
    sentences, the rest being their labelled phrases (sentence_split/'s README)."""
    sys.path.insert(0, str(ROOT / "src"))
    from atento.data.labelled import drop_contained

    return sorted(drop_contained([row_text(r) for r in rows]))


def dev_split(train_path: Path, n: int, seed: int, out_dir: Path) -> tuple[Path, Path]:
    """(train, dev) files: `n` whole sentences of `train_path` drawn with `seed` as the dev set
    (each once, in file order), and every row that occurs in none of them as training."""
    header, rows = data_lines(train_path)
    sentences = full_sentences(rows)
    if not 0 < n < len(sentences):
        raise SystemExit(f"--dev: {n} is not between 1 and the {len(sentences)} sentences")
    chosen = set(random.Random(seed).sample(sentences, n))
    held: set[str] = set().union(*(spans(x) for x in chosen))
    dev, seen = [], set()
    for r in rows:
        text = row_text(r)
        if text in chosen and text not in seen:
            seen.add(text)
            dev.append(r)
    train = [r for r in rows if row_text(r) not in held]
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = out_dir / "train.tsv", out_dir / "dev.tsv"
    for path, part in zip(paths, (train, dev), strict=True):
        path.write_text("\n".join([header, *part]) + "\n", encoding="utf-8")
    return paths


def data_files(args) -> tuple[str, str, str]:
    """(training file, file that selects or scores, format), relative to the root:
    sentence_split/'s, or with --dev its training file split into training and dev (written
    once)."""
    train_path, valid_path, fmt = DATA["sst2"]
    if not args.dev:
        return train_path, valid_path, fmt
    out_dir = ROOT / args.runs / "dev"
    paths = out_dir / "train.tsv", out_dir / "dev.tsv"
    if not all(x.is_file() for x in paths):
        paths = dev_split(ROOT / train_path, args.dev, args.dev_seed, out_dir)
    return (*(os.path.relpath(x, ROOT) for x in paths), fmt)


def read_results(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def key(row: dict) -> tuple[str, int, int]:
    return row["arm"], row["labelled"], row["seed"]


def summary(rows: list[dict]) -> str:
    """Mean +- sd (n, min..max) of validation accuracy per arm and number of labelled rows."""
    # rows without "valid" predate --dev: they were scored on sentence_split/valid.tsv
    scored = sorted({r.get("valid") or DATA["sst2"][1] for r in rows} or {DATA["sst2"][1]})
    names = ["sentence_split/valid.tsv (1,000 whole sentences)" if x == DATA["sst2"][1] else x
             for x in scored]  # fmt: skip
    lines = [
        f"SST-2 learning curve, {', '.join(names)} accuracy",
        f"{'arm':16} {'labelled':>8} {'n':>2}  {'accuracy mean +- sd':20} {'min..max':14} "
        f"{'steps':>6} {'budget':>11} {'train min':>9}",
    ]
    for arm in ARMS:
        for size in sorted({r["labelled"] for r in rows if r["arm"] == arm}):
            group = [r for r in rows if r["arm"] == arm and r["labelled"] == size]
            acc = [r["accuracy"] for r in group]
            sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
            steps = f"{statistics.mean(r['steps'] for r in group):.0f}" if arm != "bow" else "-"
            spent, name = "-", "-"
            if arm != "bow":
                name = group[0].get("budget", f"{group[0]['minutes']:g} min")
                spent = f"{statistics.mean(r.get('train_seconds', 0) for r in group) / 60:.1f}"
            lines.append(
                f"{arm:16} {size:8d} {len(acc):2d}  {statistics.mean(acc):.4f} +- {sd:.4f}"
                f"{'':5} {min(acc):.4f}..{max(acc):.4f} {steps:>6} {name:>11} {spent:>9}"
            )
    pre = {r["pretrain"]["run"]: r["pretrain"] for r in rows if r.get("pretrain")}
    for info in pre.values():
        lines.append(
            f"pretraining ({info['run']}): {info.get('budget') or budget_name(info['minutes'], 0)}"
            f", {info['steps']} updates, "
            f"masked-token accuracy {info.get('accuracy', float('nan')):.3f}"
        )
    for dev, every in sorted({(r["selected_on"], r["select_every"]) for r in rows
                              if r.get("selected_on")}):  # fmt: skip
        lines.append(f"checkpoints selected on {dev} (accuracy, every {every} updates); "
                     "the bag of words trained on the same rows")  # fmt: skip
    machines = sorted({r["machine"] for r in rows if r.get("machine")})
    lines += [f"machine: {m}" for m in machines]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    """Mean accuracy against labelled rows (log x), error bars min..max over the seeds; the
    arms' points are spread a little sideways so their bars do not hide each other."""
    sys.path.insert(0, str(ROOT / "src"))
    from atento.analysis.plotting import plt, save_figure

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, arm in enumerate(ARMS):
        sizes = sorted({r["labelled"] for r in rows if r["arm"] == arm})
        if not sizes:
            continue
        acc = [[r["accuracy"] for r in rows if key(r)[:2] == (arm, n)] for n in sizes]
        mean = [statistics.mean(a) for a in acc]
        low = [m - min(a) for m, a in zip(mean, acc, strict=True)]
        high = [max(a) - m for m, a in zip(mean, acc, strict=True)]
        x = [n * 1.06 ** (i - 1) for n in sizes]
        ax.errorbar(x, mean, yerr=[low, high], marker="o", capsize=3, color=COLORS[arm],
                    label=LABELS[arm])  # fmt: skip
    ax.set_xscale("log")
    sizes = sorted({r["labelled"] for r in rows})
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
    ax.minorticks_off()
    ax.set_xlabel("labelled training rows (log scale)")
    ax.set_ylabel("accuracy, sentence_split/valid.tsv")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="best")
    save_figure(fig, path)


def named(out: Path, ext: str) -> Path:
    """OUT + ext: `out` may hold dots of its own (e.g. a learning rate, lr0.002)."""
    return out.with_name(out.name + ext)


def write_reports(rows: list[dict], out: Path) -> None:
    named(out, ".txt").write_text(summary(rows))
    if rows:
        plot(rows, named(out, ".png"))


def pretrain(arm: str, args, log) -> dict:
    """The one MLM pretraining run of `arm` shared by every size and seed (read back when
    done), or the run that --pretrained names for it."""
    config, folder = PRETRAIN[arm]
    reuse = dict(x.split("=", 1) for x in args.pretrained).get(arm)
    if reuse:  # any atento run: its last validation says where it stopped
        if not (ROOT / reuse / "metrics.jsonl").is_file():
            raise SystemExit(f"--pretrained: {reuse} has no metrics.jsonl (not a trained run)")
        last = metrics(Path(reuse))[-1]
        return {"run": reuse, "minutes": 0.0, "steps": last["step"],
                "budget": budget_name(0, last["step"]), "accuracy": last.get("accuracy"),
                "reused": True}  # fmt: skip
    out = Path(args.runs) / folder
    overrides = [*budget(args.pretrain_minutes, args.pretrain_steps), "train.seed=1",
                 *args.set, *args.pretrain_set]  # fmt: skip
    if args.dev:  # the dev sentences stay out of the pretraining too
        train_path, dev_path, _ = data_files(args)
        overrides += [f"data.train={train_path}", f"data.exclude={dev_path}"]
    # it checkpoints at each validation: a session that stops it loses no more than that
    result = train(config, out, overrides, log, resume=True)
    return {"run": str(out), "minutes": args.pretrain_minutes, "steps": result["steps"],
            "budget": budget_name(args.pretrain_minutes, args.pretrain_steps),
            "accuracy": result["last"].get("accuracy"), "overrides": overrides}  # fmt: skip


def budget(minutes: float, steps: int) -> list[str]:
    """The overrides of a budget: `steps` updates when given (no time limit), else minutes."""
    if steps:
        return [f"train.max_steps={steps}", "train.max_minutes=0"]
    return [f"train.max_minutes={minutes}"]


def budget_name(minutes: float, steps: int) -> str:
    return f"{steps} steps" if steps else f"{minutes:g} min"


def fresh(out: Path, log) -> Path:
    """`out`, emptied if an earlier session left it unfinished (no result.json): a run
    validated only at its end has no checkpoint to resume from."""
    if (ROOT / out).is_dir() and not (ROOT / out / "result.json").is_file():
        log(f"removing the unfinished run {out}")
        shutil.rmtree(ROOT / out)
    return out


def run_one(arm: str, size: int, seed: int, args, pre: dict | None, log) -> dict:
    """One point of the curve: its subset, training (or the bag of words), evaluation."""
    train_path, valid_path, fmt = data_files(args)
    select = {}
    if args.select_every:  # select on the dev sentences, score on the validation set
        select = {"selected_on": valid_path, "select_every": args.select_every}
        valid_path = DATA["sst2"][1]
    name = f"n{size}_s{seed}"
    path = write_subset(ROOT / train_path, size, seed, ROOT / args.runs / "subsets" / f"{name}.tsv")
    subset = os.path.relpath(path, ROOT)  # as the configs name their files
    row = {"arm": arm, "labelled": size, "seed": seed, "minutes": args.minutes,
           "budget": budget_name(args.minutes, args.steps),
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "machine": f"{cpu_model()} ({cpu_flags()})", "valid": valid_path, **select}  # fmt: skip
    if arm == "bow":
        bow = bag_of_words(subset, valid_path, fmt)
        return {**row, "minutes": 0.0, **bow}
    init = [f"model.init_from={pre['run']}"] if arm in PRETRAIN else ["model.init_from="]
    validation = ["train.valid_every=0"]  # once, at the end: the last checkpoint is scored
    if select:
        validation = [
            f"data.valid={select['selected_on']}",
            f"train.valid_every={args.select_every}",
        ]
    overrides = [f"data.train={subset}", *init * (arm != "birnn"),
                 *budget(args.minutes, args.steps), f"train.seed={seed}", *validation,
                 *args.set]  # fmt: skip
    out = fresh(Path(args.runs) / f"{arm}_{name}", log)
    result = train(CONFIGS[arm], out, overrides, log)
    report = evaluate(out, valid_path, log)
    return {**row, "accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
            "steps": result["steps"], "train_seconds": result["seconds"],
            "wall_seconds": result["wall_seconds"], "run": str(out),
            "pretrain": pre if arm in PRETRAIN else None}  # fmt: skip


def check_budgets(rows: list[dict], args) -> None:
    """One OUT per budget: the runs already in it must have this call's budgets."""
    want = (budget_name(args.minutes, args.steps),
            budget_name(args.pretrain_minutes, args.pretrain_steps))  # fmt: skip
    for r in rows:
        if r["arm"] == "bow":
            continue
        pre = r.get("pretrain") or {}
        pre_minutes = pre.get("minutes", args.pretrain_minutes)
        have = (r.get("budget") or budget_name(r["minutes"], 0),
                pre.get("budget") or budget_name(pre_minutes, 0))  # fmt: skip
        if r["arm"] not in PRETRAIN or pre.get("reused"):  # a reused run is named, not budgeted
            have, wanted = have[:1], want[:1]
        else:
            wanted = want
        if have != wanted:
            raise SystemExit(
                f"{args.out}.jsonl holds runs of budget {' / pretraining '.join(have)}: "
                "give these budgets, or another --out"
            )


def sizes_of(args) -> list[int]:
    _, rows = data_lines(ROOT / data_files(args)[0])
    return [len(rows) if s == "all" else int(s) for s in args.sizes]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", default=["500", "2000", "8000", "all"],
                   help="labelled rows per run (a number or all)")  # fmt: skip
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--arms", nargs="+", choices=ARMS, default=["pretrained", "scratch", "bow"])
    p.add_argument("--minutes", type=float, default=10.0, help="fine-tuning minutes per run")
    p.add_argument("--steps", type=int, default=0,
                   help="fine-tuning updates per run instead of --minutes")  # fmt: skip
    p.add_argument("--pretrain-minutes", type=float, default=60.0,
                   help="minutes of the one MLM pretraining run")  # fmt: skip
    p.add_argument("--pretrain-steps", type=int, default=0,
                   help="updates of the MLM pretraining instead of --pretrain-minutes")  # fmt: skip
    p.add_argument("--pretrain-set", nargs="*", default=["data.drop_contained=true"],
                   metavar="KEY=VALUE", help="overrides of the pretraining run")  # fmt: skip
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="overrides of every atento train (pretraining included)")  # fmt: skip
    p.add_argument("--runs", default="runs/exp_curve", help="run directories and subsets")
    p.add_argument("--out", default="experiments/results/sst2_learning_curve",
                   help="OUT.jsonl (appended), OUT.txt, OUT.png")  # fmt: skip
    p.add_argument("--summarize", action="store_true",
                   help="start nothing: the table and plot of OUT.jsonl")  # fmt: skip
    p.add_argument("--dev", type=int, default=0, metavar="N",
                   help="hold out N whole training sentences, score on them")  # fmt: skip
    p.add_argument("--dev-seed", type=int, default=0, help="the draw of --dev's sentences")
    p.add_argument("--select-every", type=int, default=0, metavar="K",
                   help="with --dev: validate on the dev sentences every K updates, keep the "
                   "best, score it on sentence_split/valid.tsv")  # fmt: skip
    p.add_argument("--pretrained", nargs="*", default=[], metavar="ARM=RUN",
                   help="an MLM run for ARM to fine-tune instead of pretraining one")  # fmt: skip
    args = p.parse_args(argv)
    if args.select_every and not args.dev:
        p.error("--select-every needs --dev N (the sentences that select)")
    if args.select_every < 0:
        p.error("--select-every: give a positive number of updates")
    for x in args.pretrained:
        if x.partition("=")[0] not in PRETRAIN or not x.partition("=")[2]:
            p.error(f"--pretrained: {x!r} is not ARM=RUN with ARM one of {', '.join(PRETRAIN)}")
    for s in args.sizes:
        if s != "all" and not s.isdigit():
            p.error(f"--sizes: {s!r} is neither a number nor all")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = read_results(named(out, ".jsonl"))

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if not args.summarize:
        check_budgets(rows, args)
        done = {key(r) for r in rows}
        todo = [(a, n, s) for n in sizes_of(args) for s in args.seeds for a in args.arms
                if (a, n, s) not in done]  # fmt: skip
        pre = {arm: pretrain(arm, args, log) for arm in PRETRAIN
               if any(a == arm for a, _, _ in todo)}  # fmt: skip
        for arm, size, seed in todo:
            row = run_one(arm, size, seed, args, pre.get(arm), log)
            with named(out, ".jsonl").open("a") as f:
                f.write(json.dumps(row) + "\n")
            rows.append(row)
            log(f"{arm} {size} rows, seed {seed}: accuracy {row['accuracy']:.4f}")
            write_reports(rows, out)
    write_reports(rows, out)
    print(named(out, ".txt").read_text(), end="")


if __name__ == "__main__":
    main()
