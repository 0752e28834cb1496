#!/usr/bin/env bash
# Beam-5 decoding of test_2016_flickr, 32 sentences per batch, two threads, side by side:
# OpenNMT-py 3.5.1 (PyTorch) and CTranslate2 (C++) on the same OpenNMT-py (T) weights, atento (T)
# in fp32 and with bf16 autocast (search.bf16). Each decoder runs alone, one after the other;
# run it on an otherwise idle machine. Output pieces/s = SentencePiece pieces of the best
# hypotheses (EOS not counted) / seconds spent translating (model loading excluded).
#
# The OpenNMT-py model is the matched (T) config trained for the updates it makes in 30 minutes
# (../shared/peers/README.md: 1,260), e.g.
#   ONMT_EXTRA="bucket_size: 32768" WORK=$WORK bash ../shared/peers/run_onmt.sh train t onmt_t30 1260 1260 0
# Usage: WORK=/peers/working/dir [ONMT_RUN=onmt_t30] [RUN=runs/t30] benchmarks/decode_peers.sh
# Results: benchmarks/results/decode_peers.txt
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${PEERS:-../shared/peers}
DATA=${DATA:-../shared/data/multi30k}
WORK=${WORK:?set WORK to the peers working directory}
ONMT_RUN=${ONMT_RUN:-onmt_t30}
RUN=${RUN:-runs/t30}
REPEATS=${REPEATS:-2}
OUT=benchmarks/results/decode_peers.txt
mkdir -p benchmarks/results
{
  echo "# $(date -u +'%Y-%m-%d %H:%M UTC') $(lscpu | sed -n 's/^Model name: *//p') x $(nproc)"
  python3 "$PEERS/cpu_busy.py"
} | tee "$OUT"

pieces_per_s() {  # FILE SECONDS -> pieces/s
  python3 -c "import sys; n = sum(len(l.split()) for l in open(sys.argv[1])); print(f'{n} pieces, {n / float(sys.argv[2]):.0f} pieces/s')" "$1" "$2"
}

onmt_dir="$WORK/runs/$ONMT_RUN"
ckpt=$(ls -t "$onmt_dir"/model_step_*.pt | grep -v ct2src | head -1)
[[ -d "$onmt_dir/ct2" ]] || "$WORK/onmt-venv/bin/python" "$PEERS/ct2_convert_onmt.py" "$ckpt" "$onmt_dir/ct2"
for r in $(seq "$REPEATS"); do
  WORK=$WORK bash "$PEERS/run_onmt.sh" decode t "$ONMT_RUN" 5 > /dev/null
  secs=$(sed -n 's/.*Total translation time (s): //p' "$WORK/logs/$ONMT_RUN.decode5.log" | tail -1)
  echo "onmt fp32 beam 5 (run $r): ${secs}s, $(pieces_per_s "$onmt_dir/test.beam5" "$secs")" | tee -a "$OUT"
  "$WORK/onmt-venv/bin/python" "$PEERS/ct2_decode.py" "$WORK" "$onmt_dir/ct2" "$onmt_dir/ct2test" \
    test_2016_flickr float32,int8 5 2>&1 | grep '^ct2 ' | sed "s/^/(run $r) /" | tee -a "$OUT"
  for bf16 in no-bf16 bf16; do
    .venv/bin/atento evaluate "$RUN" --src "$DATA/test_2016_flickr.fr.gz" \
      --ref "$DATA/test_2016_flickr.en.gz" --beam 5 --batch-size 32 --"$bf16" --json |
      python3 -c "import json, sys; d = json.load(sys.stdin); print(f'atento $bf16 beam 5 (run $r): {d[\"seconds\"]}s, {d[\"output_pieces\"]} pieces, {d[\"output_pieces_per_second\"]:.0f} pieces/s, BLEU {d[\"bleu\"]}')" |
      tee -a "$OUT"
  done
done
for hyp in "$onmt_dir/test.beam5" "$onmt_dir/ct2test.float32.beam5"; do
  "$WORK/base-venv/bin/python" "$PEERS/detok_score.py" "$hyp" "$WORK/data/test_2016_flickr.en" |
    sed "s#^#$(basename "$hyp"): #" | tee -a "$OUT"
done
sed -i "s#$WORK#\$WORK#g" "$OUT"
