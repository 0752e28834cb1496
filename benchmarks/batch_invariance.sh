#!/usr/bin/env bash
# Batch-size invariance on test_2016_flickr with trained models (issue 14): trains the Multi30k
# RNN (additive attention) and Transformer configs for a step budget, then decodes the 1,000
# test sentences with batch sizes 1, 7 and 64 (beam 5, fp32; and greedy) and counts identical
# best hypotheses. Usage: DATA=../shared/data/multi30k STEPS=300 benchmarks/batch_invariance.sh
# Results: benchmarks/results/batch_invariance.txt (one JSON line per run and search).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/multi30k}
STEPS=${STEPS:-300}
RUNS=${RUNS:-runs/invariance}
PY=.venv/bin/python
OUT=benchmarks/results/batch_invariance.txt
{
  echo "# $(date -u +'%Y-%m-%d %H:%M UTC') $(lscpu | sed -n 's/^Model name: *//p') x $(nproc);" \
    "torch $($PY -c 'import torch; print(torch.__version__)'); $STEPS training steps a model"
  echo "# lscpu flags: $(grep -o -w -E 'avx2|avx512f|avx512_bf16|amx_bf16|amx_tile' /proc/cpuinfo | sort -u | tr '\n' ' ')"
} | tee "$OUT"
for name in rnn transformer; do
  dir=$RUNS/$name; mkdir -p "$RUNS"
  [ -d "$dir/checkpoint_best" ] || $PY -m atento train "configs/multi30k_fr_en_$name.yaml" \
    data.dir="$DATA" train.max_minutes=0 train.max_steps="$STEPS" train.valid_every="$STEPS" \
    train.valid_sentences=200 --out "$dir" > "$dir.log" 2>&1
  for beam in 5 1; do
    $PY benchmarks/batch_invariance.py "$dir" --src "$DATA/test_2016_flickr.fr.gz" \
      --batch-sizes 1,7,64 --beam "$beam" --precision fp32 | tee -a "$OUT"
  done
  # bf16 (where the CPU computes it natively): how far batching moves outputs and scores
  $PY benchmarks/batch_invariance.py "$dir" --src "$DATA/test_2016_flickr.fr.gz" \
    --batch-sizes 1,64 --beam 5 --precision bf16 | tee -a "$OUT"
done
