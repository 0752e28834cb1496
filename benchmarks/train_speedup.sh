#!/usr/bin/env bash
# Training throughput side by side in one session, on an otherwise idle machine:
#   1. OpenNMT-py (T), the matched Transformer config (../shared/peers), steady-state tok/s;
#   2. atento at BASE_REV (a git revision: the code before a change) and at the working tree,
#      fp32, for the Transformer (T) and the RNN config;
#   3. atento (T) with train.bf16=true (bf16 autocast; needs a CPU with AMX or AVX512-BF16).
# Precision and threads are set with train.bf16 / train.threads, which every revision reads
# (the current one as runtime.precision / runtime.threads, with a deprecation warning).
# Usage: WORK=/peers/working/dir BASE_REV=1a2e626 SECONDS_BUDGET=100 benchmarks/train_speedup.sh
# (WORK unset skips OpenNMT-py; SKIP_ATENTO=1 times only OpenNMT-py.) Results: benchmarks/results/train_speedup.txt
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${PEERS:-../shared/peers}
DATA=${DATA:-../shared/data/multi30k}
SECONDS_BUDGET=${SECONDS_BUDGET:-100}
SKIP=${SKIP:-30}
BASE_REV=${BASE_REV:-}
OUT=benchmarks/results/train_speedup.txt
T=configs/multi30k_fr_en_transformer.yaml
R=configs/multi30k_fr_en_rnn.yaml
mkdir -p benchmarks/results
{
  echo "# $(date -u +'%Y-%m-%d %H:%M UTC') $(lscpu | sed -n 's/^Model name: *//p') x $(nproc)," \
    "${SECONDS_BUDGET} s per run, first ${SKIP} s skipped"
  python3 "$PEERS/cpu_busy.py"
} | tee -a "$OUT"

if [[ -n ${WORK:-} ]]; then
  ONMT_EXTRA="bucket_size: 32768" WORK=$WORK bash "$PEERS/run_onmt.sh" train t onmt_t 100000 100000 \
    "$SECONDS_BUDGET" > /dev/null
  echo "onmt (T) fp32: $("$WORK/base-venv/bin/python" "$PEERS/parse_train.py" "$WORK/logs/onmt_t.train.log")" \
    | tee -a "$OUT"
fi

if [[ ${SKIP_ATENTO:-0} == 1 ]]; then
  if [[ -n ${WORK:-} ]]; then sed -i "s#$WORK#\$WORK#g" "$OUT"; fi
  exit 0
fi

measure() {  # measure SRC_ROOT LABEL CONFIG [overrides]
  local root=$1 label=$2 cfg=$3; shift 3
  .venv/bin/python "$root/benchmarks/train_throughput.py" "$root/$cfg" data.dir="$DATA" train.threads=2 "$@" \
    --seconds "$SECONDS_BUDGET" --skip "$SKIP" --label "$label" | tee -a "$OUT"
}

if [[ -n $BASE_REV ]]; then
  base=$(mktemp -d)
  git worktree add -q --detach "$base" "$BASE_REV"
  trap 'git worktree remove --force "$base"' EXIT
  measure "$base" "atento@$BASE_REV (T) fp32" "$T" train.bf16=false
fi
measure . "atento (T) fp32" "$T" train.bf16=false
measure . "atento (T) bf16" "$T" train.bf16=true
if [[ -n $BASE_REV ]]; then
  measure "$base" "atento@$BASE_REV (R) fp32" "$R" train.bf16=false
fi
measure . "atento (R) fp32" "$R" train.bf16=false
# keep this machine's paths out of the committed results
if [[ -n ${WORK:-} ]]; then sed -i "s#$WORK#\$WORK#g" "$OUT"; fi
