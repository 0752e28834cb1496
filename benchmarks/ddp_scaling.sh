#!/usr/bin/env bash
# Training throughput of the Transformer config with torch.distributed on this machine:
# 1 process x THREADS torch threads against NPROC processes (DistributedDataParallel, gloo)
# sharing the same THREADS, alternating, ROUNDS rounds. Each run trains STEPS updates of the
# config's batch budget per process (NPROC ranks: NPROC x the tokens per update) and reports
# rank 0's target tokens/s over the whole world (time inside training steps only).
# Usage: DATA=../shared/data/multi30k ROUNDS=2 STEPS=60 benchmarks/ddp_scaling.sh
# Results: benchmarks/results/ddp_scaling.txt. Run it alone on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/multi30k}
ROUNDS=${ROUNDS:-2}
STEPS=${STEPS:-60}
THREADS=${THREADS:-2}
NPROC=${NPROC:-2}
EXTRA=${EXTRA:-}
CFG=configs/multi30k_fr_en_transformer.yaml
OUT=benchmarks/results/ddp_scaling.txt
PY=.venv/bin/python
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
{
  echo "# $(date -u +'%Y-%m-%d %H:%M UTC') $(lscpu | sed -n 's/^Model name: *//p') x $(nproc);" \
    "torch $($PY -c 'import torch; print(torch.__version__)'); $STEPS updates a run; $EXTRA"
  echo "# lscpu flags: $(grep -o -w -E 'avx2|avx512f|avx512_bf16|amx_bf16|amx_tile' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  $PY ../shared/peers/cpu_busy.py 2>/dev/null || true
} | tee "$OUT"
run() {  # run LABEL NPROC
  local label=$1 n=$2 dir=$TMP/run_$RANDOM
  $PY -m atento train "$CFG" data.dir="$DATA" train.max_minutes=0 train.max_steps="$STEPS" \
    train.valid_every=0 train.valid_sentences=64 runtime.threads="$THREADS" $EXTRA \
    --nproc "$n" --out "$dir" 2> "$dir.log" | tail -n 1 \
    | $PY -c "import json,sys; r=json.load(sys.stdin); print(json.dumps({'label': '$label', 'world_size': r['world_size'], 'tokens_per_second': r['tokens_per_second'], 'precision': r['precision'], 'steps': r['steps']}))" \
    | tee -a "$OUT"
}
for round in $(seq "$ROUNDS"); do
  run "1 process x $THREADS threads" 1
  run "$NPROC processes x $((THREADS / NPROC)) thread(s)" "$NPROC"
done
$PY - "$OUT" <<'PY' | tee -a "$OUT"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
med = {}
for r in rows:
    med.setdefault(r["label"], []).append(r["tokens_per_second"])
labels = list(med)
for k in labels:
    print(f"{k}: median {statistics.median(med[k]):.0f} tok/s ({', '.join(f'{v:.0f}' for v in med[k])})")
if len(labels) == 2:
    print(f"ratio {labels[1]} / {labels[0]}: {statistics.median(med[labels[1]]) / statistics.median(med[labels[0]]):.3f}")
PY
