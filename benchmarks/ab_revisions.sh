#!/usr/bin/env bash
# A/B of two revisions on this machine, in ABBA order (so neither side always runs first):
# RNN training tokens/s (fp32), beam-5 decoding of test_2016_flickr with the RNN and the
# Transformer (fp32, the same weights: runs trained by BASE_REV), and KV-cached sampling
# (benchmarks/lm_sampling.py, each side's own script). Complements core_regression.sh, whose
# rounds always start with the same side for a config.
# Usage: BASE_REV=87465d3 ROUNDS=1 benchmarks/ab_revisions.sh   (run it alone on the machine)
# Results: benchmarks/results/ab_revisions.jsonl and .txt
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_NAME=${DATA:-../shared/data/multi30k}
DATA=$(realpath "$DATA_NAME")
BASE_REV=${BASE_REV:-87465d3}
ROUNDS=${ROUNDS:-1}
PY=$PWD/.venv/bin/python
OUT=benchmarks/results/ab_revisions.txt
JSONL=benchmarks/results/ab_revisions.jsonl
R=configs/multi30k_fr_en_rnn.yaml
T=configs/multi30k_fr_en_transformer.yaml
WORK=$(mktemp -d)
base=$WORK/base
git worktree add -q --detach "$base" "$BASE_REV"
trap 'git worktree remove --force "$base"; rm -rf "$WORK"' EXIT
mkdir -p benchmarks/results
: > "$JSONL"
{
  echo "# $(date -u +'%Y-%m-%d %H:%M UTC') base $BASE_REV vs $(git rev-parse --short HEAD)+tree;" \
    "$(lscpu | sed -n 's/^Model name: *//p') x $(nproc)"
  echo "# lscpu flags: $(grep -o -w -E 'avx2|avx512f|avx512_bf16|amx_bf16|amx_tile' /proc/cpuinfo | sort -u | tr '\n' ' ')"
} | tee "$OUT"
root() { if [[ $1 == base ]]; then echo "$base"; else echo "$PWD"; fi; }
pp() { if [[ $1 == base ]]; then echo "$base/src"; else echo "$PWD/src"; fi; }

train() {
  local s=$1
  (cd "$(root "$s")" && PYTHONPATH=$(pp "$s") $PY benchmarks/train_throughput.py "$R" \
    data.dir="$DATA" train.threads=2 runtime.precision=fp32 --seconds 40 --skip 10 \
    --label "$s R fp32 train" 2>/dev/null) | tee -a "$JSONL"
}
for name in R T; do
  cfg=$R; [[ $name == T ]] && cfg=$T
  PYTHONPATH=$base/src $PY -m atento.cli.main train "$base/$cfg" data.dir="$DATA" \
    train.max_minutes=0 train.max_steps=300 train.valid_every=0 --out "$WORK/run_$name" \
    > /dev/null 2>&1
done
decode() {
  local s=$1 name=$2
  PYTHONPATH=$(pp "$s") $PY -m atento.cli.main evaluate "$WORK/run_$name" \
    --src "$DATA/test_2016_flickr.fr.gz" --ref "$DATA/test_2016_flickr.en.gz" --beam 5 \
    --precision fp32 --json 2>/dev/null \
    | $PY -c "import json,sys; r=json.load(sys.stdin); r['label']='$s $name decode'; print(json.dumps(r))" \
    | tee -a "$JSONL"
}
sample() {
  (cd "$(root "$1")" && $PY benchmarks/lm_sampling.py --repeats 3 2>/dev/null) \
    | $PY -c "import json,sys; r=json.load(sys.stdin); r['label']='$1 sampling'; print(json.dumps(r))" \
    | tee -a "$JSONL"
}
for round in $(seq "$ROUNDS"); do
  for s in base new new base; do train $s; done
  for s in base new new base; do decode $s R; decode $s T; done
  for s in base new new base; do sample $s; done
done
sed -i "s|$DATA|${DATA_NAME}|g" "$JSONL"  # the data folder as given, not this machine's path
$PY - "$JSONL" <<'PY' | tee -a "$OUT"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def med(label, key):
    vals = [r[key] for r in rows if r["label"] == label]
    return statistics.median(vals), vals
for what, key in (("R fp32 train", "target_tokens_per_second"),
                  ("R decode", "output_pieces_per_second"),
                  ("T decode", "output_pieces_per_second"),
                  ("sampling", "seconds_cached")):
    (b, bv), (n, nv) = med(f"base {what}", key), med(f"new {what}", key)
    ratio = b / n if key.startswith("seconds") else n / b  # new speed / base speed
    print(f"{what:<14} {key}: base {b:.3f} {[round(v, 3) for v in bv]} "
          f"new {n:.3f} {[round(v, 3) for v in nv]}  speed new/base {ratio:.3f}")
PY
