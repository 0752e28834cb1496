#!/usr/bin/env bash
# Beam-5 decoding of test_2016_flickr, 32 sentences per batch, two threads, side by side:
# OpenNMT-py 3.5.1 (PyTorch) and CTranslate2 (C++) on the same OpenNMT-py (T) weights, atento (T)
# in fp32, with bf16 autocast (--precision bf16) and with two batches at once on one thread each
# (--workers 2; CTranslate2's inter_threads=2 for comparison). Each decoder runs alone, in turn;
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
  # CTranslate2 with two batches at once, one thread each (inter_threads=2, intra_threads=1)
  "$WORK/onmt-venv/bin/python" - "$WORK" "$onmt_dir/ct2" <<'PY' 2>&1 | grep '^ct2 ' | sed "s/^/(run $r) /" | tee -a "$OUT"
import os, sys, time
import ctranslate2
work, mdir = sys.argv[1:3]
src = [l.split() for l in open(os.path.join(work, "data", "test_2016_flickr.sp.fr"), encoding="utf-8")]
tr = ctranslate2.Translator(mdir, device="cpu", compute_type="float32", intra_threads=1, inter_threads=2)
tr.translate_batch(src[:64], beam_size=5, max_batch_size=32)
t0 = time.perf_counter()
res = tr.translate_batch(src, beam_size=5, max_batch_size=32, batch_type="examples", max_decoding_length=100)
dt = time.perf_counter() - t0
n = sum(len(x.hypotheses[0]) for x in res)
print(f"ct2 float32 inter_threads=2 beam 5: {len(src)/dt:.1f} sent/s ({dt:.2f}s), {n/dt:.0f} out tok/s")
PY
  for variant in "fp32|--precision fp32" "bf16|--precision bf16" "bf16 workers=2|--precision bf16 --workers 2"; do
    label=${variant%%|*}; flags=${variant#*|}
    # shellcheck disable=SC2086
    .venv/bin/atento evaluate "$RUN" --src "$DATA/test_2016_flickr.fr.gz" \
      --ref "$DATA/test_2016_flickr.en.gz" --beam 5 --batch-size 32 $flags --json |
      python3 -c "import json, sys; d = json.load(sys.stdin); print(f'atento $label beam 5 (run $r): {d[\"seconds\"]}s, {d[\"output_pieces\"]} pieces, {d[\"output_pieces_per_second\"]:.0f} pieces/s, BLEU {d[\"bleu\"]}')" |
      tee -a "$OUT"
  done
done
for hyp in "$onmt_dir/test.beam5" "$onmt_dir/ct2test.float32.beam5"; do
  "$WORK/base-venv/bin/python" "$PEERS/detok_score.py" "$hyp" "$WORK/data/test_2016_flickr.en" |
    sed "s#^#$(basename "$hyp"): #" | tee -a "$OUT"
done
sed -i "s#$WORK#\$WORK#g" "$OUT"
