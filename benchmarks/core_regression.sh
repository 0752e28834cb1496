#!/usr/bin/env bash
# The training and decoding core before and after a change, side by side on this machine:
#   1. the training losses of the first 50 updates (RNN and Transformer configs, fp32, one seed):
#      must be identical;
#   2. steady-state training tokens/s, BASE_REV against the working tree, same precision on both
#      sides, alternating, REPEATS rounds (medians in the summary): RNN fp32, Transformer fp32 and
#      bf16; plus the working tree's RNN in bf16, so fp32 and bf16 are compared for both configs
#      (which one `runtime.precision: auto` picks here is printed too);
#   3. beam-5 decoding of test_2016_flickr (1,000 sentences) with the same weights (runs trained
#      by BASE_REV for DECODE_STEPS updates, which both revisions can load), each config's own
#      decoding settings, alternating, REPEATS rounds: output pieces/s.
# Each side runs its own code and its own copy of the configs (the same settings, spelt as that
# revision spells them: train.bf16 / train.threads are read as runtime.precision / runtime.threads).
# Usage: BASE_REV=6f5ce91 REPEATS=3 SECONDS_BUDGET=40 SKIP=10 benchmarks/core_regression.sh
# PARTS="3" runs only the decoding part (default "1 2 3": all three).
# Run it alone on the machine. Results: benchmarks/results/core_regression.txt (+ .jsonl)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/multi30k}
BASE_REV=${BASE_REV:-6f5ce91}
REPEATS=${REPEATS:-3}
SECONDS_BUDGET=${SECONDS_BUDGET:-40}
SKIP=${SKIP:-10}
DECODE_STEPS=${DECODE_STEPS:-300}
PARTS=${PARTS:-1 2 3}
part() { [[ " $PARTS " == *" $1 "* ]]; }
PY=.venv/bin/python
OUT=benchmarks/results/core_regression.txt
JSONL=benchmarks/results/core_regression.jsonl
T=configs/multi30k_fr_en_transformer.yaml
R=configs/multi30k_fr_en_rnn.yaml
WORKDIR=$(mktemp -d)
base=$WORKDIR/base
git worktree add -q --detach "$base" "$BASE_REV"
trap 'git worktree remove --force "$base"; rm -rf "$WORKDIR"' EXIT
mkdir -p benchmarks/results
: > "$JSONL"
{
  echo "# $(date -u +'%Y-%m-%d %H:%M UTC') base $BASE_REV vs $(git rev-parse --short HEAD)+tree;" \
    "$(lscpu | sed -n 's/^Model name: *//p') x $(nproc); torch $($PY -c 'import torch; print(torch.__version__)')"
  echo "# lscpu flags: $(grep -o -w -E 'avx2|avx512f|avx512_bf16|amx_bf16|amx_tile' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  for cfg in "$R" "$T"; do
    echo "# runtime.precision=auto for $cfg here: $($PY -c "from atento.config_io import load_config; from atento.registry import placement_for; print(placement_for(load_config('$cfg')).describe())")"
  done
  $PY ../shared/peers/cpu_busy.py 2>/dev/null || true
} | tee "$OUT"

side() {  # side base|new -> the source root of that side
  if [[ $1 == base ]]; then echo "$base"; else echo "."; fi
}

part 1 && echo "## 1. first 50 training losses, fp32, seed 1" | tee -a "$OUT"
for cfg in "$R" "$T"; do
  part 1 || continue
  for s in base new; do
    # the plain output layer on the new side (fp32 on a CPU fuses it by default since issue 24):
    # the loss comparison is about everything else; NEW_LOSS_OVERRIDES="" compares the defaults
    extra=""; [[ $s == new ]] && extra=${NEW_LOSS_OVERRIDES-train.fused_output=false}
    ATENTO_SRC="$(side $s)/src" $PY benchmarks/first_losses.py "$(side $s)/$cfg" data.dir="$DATA" train.bf16=false \
      train.threads=2 $extra --steps 50 2>/dev/null > "$WORKDIR/losses_$s.json"
  done
  $PY - "$WORKDIR/losses_base.json" "$WORKDIR/losses_new.json" "$cfg" <<'PY' | tee -a "$OUT"
import json, sys
a, b = (json.load(open(p))["losses"] for p in sys.argv[1:3])
same = a == b
print(f"{sys.argv[3]}: {len(a)} losses, identical={same}, first {a[0]:.6f} last {a[-1]:.6f}"
      + ("" if same else f" max |diff| {max(abs(x - y) for x, y in zip(a, b)):.3g}"))
PY
done

part 2 && echo "## 2. training tokens/s (${SECONDS_BUDGET} s a run, first ${SKIP} s skipped)" | tee -a "$OUT"
train() {  # train SIDE LABEL CONFIG [overrides]
  local s=$1 label=$2 cfg=$3; shift 3
  $PY "$(side $s)/benchmarks/train_throughput.py" "$(side $s)/$cfg" data.dir="$DATA" train.threads=2 "$@" \
    --seconds "$SECONDS_BUDGET" --skip "$SKIP" --label "$s $label" 2>/dev/null | tee -a "$JSONL"
}
for round in $(seq "$REPEATS"); do
  part 2 || break
  echo "# round $round" >> "$JSONL"
  for s in base new; do train $s "R fp32" "$R" train.bf16=false; done
  train new "R bf16" "$R" train.bf16=true
  for s in new base; do train $s "T fp32" "$T" train.bf16=false; done
  for s in base new; do train $s "T bf16" "$T" train.bf16=true; done
done

part 3 && echo "## 3. beam-5 decoding, test_2016_flickr, output pieces/s" | tee -a "$OUT"
TEST_SRC=$DATA/test_2016_flickr.fr.gz
TEST_REF=$DATA/test_2016_flickr.en.gz
for name in R T; do
  part 3 || break
  cfg=$R; [[ $name == T ]] && cfg=$T
  PYTHONPATH=$base/src $PY -m atento.cli.main train "$base/$cfg" data.dir="$DATA" train.max_minutes=0 \
    train.max_steps="$DECODE_STEPS" train.valid_every=0 --out "$WORKDIR/run_$name" > /dev/null 2>&1
done
decode() {  # decode SIDE NAME
  local s=$1 name=$2 pp=""
  [[ $s == base ]] && pp=$base/src
  PYTHONPATH=$pp $PY -m atento.cli.main evaluate "$WORKDIR/run_$name" --src "$TEST_SRC" \
    --ref "$TEST_REF" --beam 5 --json --hyp-out "$WORKDIR/hyp_${s}_$name.txt" 2>/dev/null \
    | $PY -c "import json,sys; r=json.load(sys.stdin); r['label']='$s $name decode'; print(json.dumps(r))" \
    | tee -a "$JSONL"
}
for round in $(seq "$REPEATS"); do
  part 3 || break
  for s in base new; do decode $s R; done
  for s in new base; do decode $s T; done
done

for name in R T; do
  part 3 || break
  if cmp -s "$WORKDIR/hyp_base_$name.txt" "$WORKDIR/hyp_new_$name.txt"; then same=identical; else
    same="DIFFERENT ($(diff "$WORKDIR/hyp_base_$name.txt" "$WORKDIR/hyp_new_$name.txt" | grep -c '^<') lines)"
  fi
  echo "$name decode: base and new outputs $same (last round)" >> "$WORKDIR/same.txt"
done
$PY - "$JSONL" <<'PY' | tee -a "$OUT"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def med(label, key):
    vals = [r[key] for r in rows if r["label"] == label]
    return statistics.median(vals), vals
for what, key in (("training target tokens/s", "target_tokens_per_second"),
                  ("decoding output pieces/s", "output_pieces_per_second")):
    print(f"{what}: median (rounds)")
    labels = sorted({r["label"].split(" ", 1)[1] for r in rows if key in r})
    for label in labels:
        line = f"  {label:<12}"
        for s in ("base", "new"):
            if any(r["label"] == f"{s} {label}" for r in rows):
                m, vals = med(f"{s} {label}", key)
                line += f" {s} {m:>8.1f} ({', '.join(f'{v:.0f}' for v in vals)})"
        if all(any(r["label"] == f"{s} {label}" for r in rows) for s in ("base", "new")):
            ratio = med(f"new {label}", key)[0] / med(f"base {label}", key)[0]
            line += f"  new/base {ratio:.3f}"
        print(line)
for name in ("R", "T"):
    b = [r["bleu"] for r in rows if r["label"] == f"base {name} decode"]
    n = [r["bleu"] for r in rows if r["label"] == f"new {name} decode"]
    if b and n:
        print(f"  {name} decode BLEU base {b[0]} new {n[0]}")
PY
if [[ -f "$WORKDIR/same.txt" ]]; then tee -a "$OUT" < "$WORKDIR/same.txt"; fi
