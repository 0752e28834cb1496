#!/usr/bin/env bash
# Corpus scale (issue 22): Multi30k's training pairs repeated x1, x10, x100 (~2.9 M pairs,
# ~400 MB of text at x100; built here, nothing downloaded), each prepared into the corpus
# store and trained on for 50 steps; SentencePiece's own encoding rate beside it.
# Usage: SIZES=1,10,100 WORKERS=2 STEPS=50 DATA=../shared/data/multi30k benchmarks/corpus_scale.sh
#   (run it alone on the machine; x100 needs ~3 GB of free disk in $TMPDIR)
# Results: benchmarks/results/corpus_scale.txt (one JSON line per size, then a table)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-1,10,100}
WORKERS=${WORKERS:-$(nproc)}
STEPS=${STEPS:-50}
DATA=${DATA:-../shared/data/multi30k}
PY=${PY:-.venv/bin/python}
OUT=benchmarks/results/corpus_scale.txt
mkdir -p benchmarks/results
{
  echo "# $(date -u +'%Y-%m-%d %H:%M UTC') $(git rev-parse --short HEAD);" \
    "$(lscpu | sed -n 's/^Model name: *//p') x $(nproc); workers $WORKERS"
  PYTHONPATH=src $PY benchmarks/corpus_scale.py run --sizes "$SIZES" --workers "$WORKERS" --steps "$STEPS" \
    --data "$DATA"
} | tee "$OUT"
