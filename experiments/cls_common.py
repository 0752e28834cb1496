"""Pieces shared by the sentence-classification experiments (`sst2_pretraining.py`,
`sst2_learning_curve.py`): the data files, the machine's description, one `atento train` run
under the shared lock that a later call reads back instead of repeating, and the scikit-learn
bag-of-words baseline.

The classification figures are taken on SST-2's honest split, `sentence_split/` (1,000 whole
sentences for validation, every phrase of them removed from training; its README). The
figures of `benchmarks/results/sst2_*.txt` dated before 2026-12-06 were taken on the random
split `../shared/data/sst2/valid.tsv`, whose rows are mostly phrases of sentences still in
train.tsv: they overstate accuracy by about 10 points.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = "/tmp/atento-heavy.lock"
SST2 = "../shared/data/sst2/sentence_split"
# name -> (training file, validation file, reader), relative to the repository root
DATA = {
    "sst2": (f"{SST2}/train.tsv", f"{SST2}/valid.tsv", "sst2"),
    "trec": ("../shared/data/trec/train.label", "../shared/data/trec/valid.label", "trec"),
}


class NotRun(Exception):
    """A run that has not finished, asked for where nothing may be started (--summarize)."""


def cpu_flags() -> str:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    words = set(text.split())
    return " ".join(sorted(w for w in wanted if w in words))


def cpu_model() -> str:
    info = Path("/proc/cpuinfo")
    for line in info.read_text().splitlines() if info.exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def run_wall(out: Path) -> float:
    """Seconds from the run directory's config (written before the tokenizer is built) to its
    last checkpoint: the command's work without the wait for the shared lock."""
    start = (ROOT / out / "config.yaml").stat().st_mtime
    end = (ROOT / out / "checkpoint_last" / "meta.json").stat().st_mtime
    return round(end - start, 1)


def metrics(out: Path) -> list[dict]:
    """The rows of a run's metrics.jsonl (one per validation)."""
    return [json.loads(x) for x in (ROOT / out / "metrics.jsonl").read_text().splitlines() if x]


def curve(rows: list[dict]) -> list[list[float]]:
    """(seconds, validation accuracy) of each validation of a run."""
    return [[r["seconds"], r["accuracy"]] for r in rows if "accuracy" in r]


def atento(*args: str) -> list[str]:
    """The command line of `python -m atento ARGS` under the shared lock."""
    return ["flock", LOCK, sys.executable, "-m", "atento", *args]


def train(
    config: str, out: Path, overrides: list[str], log, *, summarize: bool = False,
    resume: bool = False,
) -> dict:  # fmt: skip
    """One `atento train CONFIG OVERRIDES --out OUT` under the shared lock; its result, wall
    time and last metrics. A run with a result.json is read back, not repeated; with
    `summarize` a run without one raises NotRun; with `resume` an unfinished run continues
    from its last checkpoint (`--resume auto`)."""
    done = ROOT / out / "result.json"
    if done.is_file():  # done before: resume
        result = json.loads(done.read_text())
        return {**result, "wall_seconds": run_wall(out), "curve": curve(metrics(out))}
    if summarize:
        raise NotRun(str(out))
    cmd = atento(
        "train", config, *overrides, "--out", str(out), *(["--resume", "auto"] if resume else [])
    )
    log(" ".join(cmd))
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = metrics(out)
    result.update(wall_seconds=run_wall(out), last=rows[-1], validations=len(rows))
    done.write_text(json.dumps(result))
    return {**result, "curve": curve(rows)}


def evaluate(run: Path, data: str, log) -> dict:
    """`atento evaluate RUN --data DATA --json`: the run's (best) checkpoint scored on DATA."""
    cmd = atento("evaluate", str(run), "--data", data, "--json")
    log(" ".join(cmd))
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def bag_of_words(train_path: str, valid_path: str, fmt: str) -> dict:
    """scikit-learn: binary unigram + bigram counts, logistic regression (lbfgs, C=1), trained
    on the training file and scored on the validation file (paths relative to the root)."""
    sys.path.insert(0, str(ROOT / "src"))
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    from atento.data.labelled import read_labelled

    start = time.perf_counter()
    tr, va = read_labelled(ROOT / train_path, fmt), read_labelled(ROOT / valid_path, fmt)
    vec = CountVectorizer(ngram_range=(1, 2), binary=True, token_pattern=r"\S+", lowercase=True)
    x_tr, x_va = vec.fit_transform(tr.sentences), vec.transform(va.sentences)
    clf = LogisticRegression(C=1.0, max_iter=2000).fit(x_tr, tr.labels)
    accuracy = sum(p == g for p, g in zip(clf.predict(x_va), va.labels, strict=True)) / len(
        va.labels
    )
    return {"accuracy": round(float(accuracy), 4), "features": x_tr.shape[1],
            "wall_seconds": round(time.perf_counter() - start, 1)}  # fmt: skip
