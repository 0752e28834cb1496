#!/usr/bin/env bash
# Side by side with OpenNMT-py and CTranslate2 on the matched (T) config
# (../shared/peers/README.md), one run at a time on an otherwise idle machine:
#   1. OpenNMT-py (T): SECONDS_BUDGET of training, steady-state target tokens/s; beam-5 decoding of
#      test_2016_flickr with its last checkpoint; the same weights in CTranslate2 (C++ engine);
#   2. atento (T), fp32: steady-state target tokens/s;
#   3. atento (T) trained for the same SECONDS_BUDGET, then beam-5 decoding of test_2016_flickr.
# Usage: WORK=/peers/working/dir benchmarks/peers_transformer.sh
# Results: benchmarks/results/peers_transformer.txt
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${PEERS:-../shared/peers}
DATA=${DATA:-../shared/data/multi30k}
WORK=${WORK:?set WORK to the peers working directory}
SECONDS_BUDGET=${SECONDS_BUDGET:-180}
OUT=benchmarks/results/peers_transformer.txt
CFG=configs/multi30k_fr_en_transformer.yaml
mkdir -p benchmarks/results
{
  echo "# $(date -u +'%Y-%m-%d %H:%M UTC') $(lscpu | sed -n 's/^Model name: *//p') x $(nproc)"
  python3 "$PEERS/cpu_busy.py"
} | tee "$OUT"

if [[ ${SKIP_ONMT:-0} != 1 ]]; then
  ONMT_EXTRA="bucket_size: 32768" WORK=$WORK bash "$PEERS/run_onmt.sh" train t onmt_t 100000 25 "$SECONDS_BUDGET"
  echo "onmt (T) train: $("$WORK/base-venv/bin/python" "$PEERS/parse_train.py" "$WORK/logs/onmt_t.train.log")" | tee -a "$OUT"
  WORK=$WORK bash "$PEERS/run_onmt.sh" decode t onmt_t 5 | tee -a "$OUT"
  ckpt=$(ls -t "$WORK/runs/onmt_t"/model_step_*.pt | grep -v ct2src | head -1)
  rm -rf "$WORK/runs/onmt_t/ct2"
  "$WORK/onmt-venv/bin/python" "$PEERS/ct2_convert_onmt.py" "$ckpt" "$WORK/runs/onmt_t/ct2"
  "$WORK/onmt-venv/bin/python" "$PEERS/ct2_decode.py" "$WORK" "$WORK/runs/onmt_t/ct2" \
    "$WORK/runs/onmt_t/ct2test" test_2016_flickr float32 5 2>&1 | tee -a "$OUT"
fi

for variant in "fp32|runtime.threads=2"; do
  label=${variant%%|*}; overrides=${variant#*|}
  # shellcheck disable=SC2086
  .venv/bin/python benchmarks/train_throughput.py "$CFG" data.dir="$DATA" $overrides \
    --seconds "$SECONDS_BUDGET" --skip 45 --label "atento (T) $label" | tee -a "$OUT"
done

run=runs/bench_atento_t
rm -rf "$run"
.venv/bin/atento train "$CFG" data.dir="$DATA" train.valid_every=0 \
  train.max_minutes="$(python3 -c "print($SECONDS_BUDGET / 60)")" --out "$run" | tail -n 1 | tee -a "$OUT"
echo "atento (T) beam-5 decode: $(.venv/bin/atento evaluate "$run" --src "$DATA/test_2016_flickr.fr.gz" \
  --ref "$DATA/test_2016_flickr.en.gz" --beam 5 --batch-size 32 --json)" | tee -a "$OUT"
# keep this machine's paths out of the committed results
sed -i "s#$WORK#\$WORK#g" "$OUT"
