#!/usr/bin/env bash
# Side by side with OpenNMT-py on the matched (R) config (../shared/peers/README.md), one run at
# a time on an otherwise idle machine:
#   1. OpenNMT-py (R): 180 s of training, steady-state target tokens/s, then beam-5 decoding of
#      test_2016_flickr with its last checkpoint;
#   2. atento on the same (R) shape (input feeding, dropout 0.1, 4,096-token batches) and on the
#      default config (no input feeding), fp32: steady-state tokens/s (bf16 autocast was slower
#      here: oneDNN builds kernels for every new batch shape);
#   3. atento (R) trained for the same 180 s, then beam-5 decoding of test_2016_flickr.
# Usage: WORK=/some/dir/outside/the/repo benchmarks/peers_rnn.sh   (WORK as set up by the peers'
# setup_venvs.sh + preprocess.py). Results: benchmarks/results/peers_rnn.txt
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${PEERS:-../shared/peers}
DATA=${DATA:-../shared/data/multi30k}
WORK=${WORK:?set WORK to the peers working directory}
SECONDS_BUDGET=${SECONDS_BUDGET:-180}
OUT=benchmarks/results/peers_rnn.txt
R_MATCHED="model.input_feeding=true model.dropout=0.1 train.batch_tokens=4096 runtime.threads=2"
mkdir -p benchmarks/results
{
  echo "# $(date -u +'%Y-%m-%d %H:%M UTC') $(lscpu | sed -n 's/^Model name: *//p') x $(nproc)"
  python3 "$PEERS/cpu_busy.py"
} | tee "$OUT"

if [[ ${SKIP_ONMT:-0} != 1 ]]; then
  ONMT_EXTRA="bucket_size: 32768" WORK=$WORK bash "$PEERS/run_onmt.sh" train r onmt_r 100000 25 "$SECONDS_BUDGET"
  echo "onmt (R) train: $("$WORK/base-venv/bin/python" "$PEERS/parse_train.py" "$WORK/logs/onmt_r.train.log")" | tee -a "$OUT"
  echo "onmt (R) peak memory: $(cat "$WORK/logs/onmt_r.train.log.json")" | tee -a "$OUT"
  WORK=$WORK bash "$PEERS/run_onmt.sh" decode r onmt_r 5 | tee -a "$OUT"
fi

for variant in "R-matched fp32|$R_MATCHED" \
               "default fp32|runtime.threads=2"; do
  label=${variant%%|*}; overrides=${variant#*|}
  # shellcheck disable=SC2086
  .venv/bin/python benchmarks/train_throughput.py configs/multi30k_fr_en_rnn.yaml \
    data.dir="$DATA" $overrides --seconds "$SECONDS_BUDGET" --skip 45 --label "atento $label" | tee -a "$OUT"
done

run=runs/bench_atento_r
rm -rf "$run"
# shellcheck disable=SC2086
.venv/bin/atento train configs/multi30k_fr_en_rnn.yaml data.dir="$DATA" $R_MATCHED \
  train.max_minutes="$(python3 -c "print($SECONDS_BUDGET / 60)")" train.valid_every=0 --out "$run" | tail -n 1 | tee -a "$OUT"
echo "atento (R) beam-5 decode: $(.venv/bin/atento evaluate "$run" --src "$DATA/test_2016_flickr.fr.gz" \
  --ref "$DATA/test_2016_flickr.en.gz" --beam 5 --batch-size 32 --json)" | tee -a "$OUT"
# keep this machine's paths out of the committed results
sed -i "s#$WORK#\$WORK#g" "$OUT"
