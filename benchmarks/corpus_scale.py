"""Corpus scale (issue 22): Multi30k's training pairs repeated x1, x10, x100, prepared into
the corpus store and trained on, one size after the other; `benchmarks/corpus_scale.sh` runs it.

    python benchmarks/corpus_scale.py run --sizes 1,10,100 --workers 2 \
        --data ../shared/data/multi30k

For each size, in a fresh ATENTO_CACHE under a temporary folder:
- build: train.fr / train.en = Multi30k's train split repeated N times (plain text; no download)
- prepare: `atento prepare` in a child process: wall time, the store's own split of it
  (tokenizer training; reading + encoding), sentences/s of the encoding (both sides), the
  child's peak RSS (the main process; each pool worker is a process of its own) and store size
- SentencePiece's own `encode(lines, num_threads=N)` on the same lines with the store's model,
  side by side (batches of 100,000 lines, the ceiling for the encoding step)
- train: `atento train` (Transformer config, fp32, 50 steps, validation of 50 sentences at the
  end) in a child process with the store ready: seconds from the command's start to the end of
  its first update, and the peak RSS over the 50 steps
One JSON line per size on stdout, then a table.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "multi30k_fr_en_transformer.yaml"


def build(data: Path, factor: int, out: Path) -> tuple[Path, Path, int]:
    """train.fr / train.en: Multi30k's train split repeated `factor` times."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for lang in ("fr", "en"):
        with gzip.open(data / f"train.{lang}.gz", "rb") as f:
            text = f.read()
        path = out / f"train.{lang}"
        with open(path, "wb") as f:
            for _ in range(factor):
                f.write(text)
        paths.append(path)
    lines = text.count(b"\n") * factor
    return paths[0], paths[1], lines


def _child(argv: list[str], env: dict[str, str]) -> dict:
    """Run argv through this script's `measure` mode: its wall time and peak RSS (MB)."""
    cmd = [sys.executable, __file__, "measure", "--", *argv]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(argv: list[str]) -> None:
    """`measure -- CMD...`: run an atento command in this process; print its wall time, the
    time its first training update ended (train) and this process's peak RSS."""
    start = time.perf_counter()  # before atento and torch are imported, as a command starts
    from atento.cli.main import main
    from atento.training.loop import Trainer

    first: list[float] = []
    step = Trainer.train_step

    def timed(self, batches):
        result = step(self, batches)
        if not first:
            first.append(time.perf_counter() - start)
        return result

    Trainer.train_step = timed
    with open(os.devnull, "w") as quiet:
        stdout, sys.stdout = sys.stdout, quiet
        try:
            code = main(argv)
        finally:
            sys.stdout = stdout
    if code != 0:
        raise SystemExit(code)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": round(time.perf_counter() - start, 2),
                      "first_update_s": round(first[0], 2) if first else None,
                      "peak_rss_mb": round(rss, 1)}))  # fmt: skip


def sp_rate(model: Path, files: list[Path], threads: int) -> float:
    """Sentences/s of SentencePiece's own batch encoding of the files' lines."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(model))
    total, seconds = 0, 0.0
    for path in files:
        with open(path, encoding="utf-8") as f:
            while True:
                lines = [line.rstrip("\n") for _, line in zip(range(100_000), f, strict=False)]
                if not lines:
                    break
                tick = time.perf_counter()
                sp.encode(lines, out_type=int, num_threads=threads)
                seconds += time.perf_counter() - tick
                total += len(lines)
    return total / seconds


def one_size(data: Path, factor: int, workers: int, work: Path, steps: int = 50) -> dict:
    src, tgt, pairs = build(data, factor, work / f"x{factor}")
    cache = work / f"cache{factor}"
    env = {**os.environ, "ATENTO_CACHE": str(cache), "PYTHONPATH": str(ROOT / "src")}
    valid = [
        f"data.valid.{side}={data}/val.{lang}.gz" for side, lang in (("src", "fr"), ("tgt", "en"))
    ]
    over = ["data.corpus=files", f"data.train.src={src}", f"data.train.tgt={tgt}", *valid]
    prep = _child(["prepare", str(CONFIG), *over, "--workers", str(workers)], env)
    store = next((cache / "stores").glob("parallel-*"))
    manifest = json.loads((store / "manifest.json").read_text())
    sizes = sum(p.stat().st_size for p in store.iterdir())
    encode_s = manifest["seconds"]["encode"]
    ceiling = sp_rate(store / "joint.model", [src, tgt], workers)
    train = _child(["train", str(CONFIG), *over, "runtime.precision=fp32",
                    f"train.max_steps={steps}", "train.max_minutes=0", "train.valid_every=0",
                    "train.valid_sentences=50",
                    "--out", str(work / f"run{factor}")], env)  # fmt: skip
    return {
        "factor": factor, "pairs": pairs, "workers": workers,
        "prepare_s": prep["seconds"], "tokenizer_s": manifest["seconds"]["tokenizer"],
        "encode_s": encode_s, "encode_sentences_per_s": round(2 * pairs / encode_s),
        "sentencepiece_sentences_per_s": round(ceiling),
        "encode_vs_sentencepiece": round(2 * pairs / encode_s / ceiling, 3),
        "prepare_peak_rss_mb": prep["peak_rss_mb"], "store_mb": round(sizes / 1e6, 1),
        "train_first_update_s": train["first_update_s"], "train_steps": steps,
        "train_s": train["seconds"],
        "train_peak_rss_mb": train["peak_rss_mb"],
    }  # fmt: skip


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "measure":
        measure(sys.argv[3:])
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("mode", choices=["run"])
    p.add_argument("--sizes", default="1,10,100")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--steps", type=int, default=50, help="training steps (the issue: 50)")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "multi30k"))
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="corpus-scale-") as work:
        for factor in (int(s) for s in args.sizes.split(",")):
            rows.append(
                one_size(Path(args.data).resolve(), factor, args.workers, Path(work), args.steps)
            )
            print(json.dumps(rows[-1]), flush=True)
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")


if __name__ == "__main__":
    main()
