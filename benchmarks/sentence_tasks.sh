#!/usr/bin/env bash
# MLM pretraining and classification before and after they moved onto the corpus store
# (issue 22), side by side on this machine, BASE_REV (the in-memory path) against the tree:
#   1. the first STEPS training losses (fp32, seed 1) of SST-2 MLM, SST-2 BERT classification
#      from scratch and TREC MLM: must be identical (the same tokenizer: SST-2 and TREC have fewer
#      sentences than data.tokenizer_sample, so the store's sample is all of them, in order);
#   2. steady-state training throughput (MLM: masked tokens/s, classify: sentences/s), fp32,
#      alternating, REPEATS rounds, medians (the tree's store is prepared by step 1).
# Usage: BASE_REV=b453e9b REPEATS=3 SECONDS_BUDGET=40 SKIP=10 benchmarks/sentence_tasks.sh
# Smoke: STEPS=3 REPEATS=1 SECONDS_BUDGET=4 SKIP=1 benchmarks/sentence_tasks.sh
# Run it alone on the machine. Results: benchmarks/results/sentence_tasks.txt (+ .jsonl)
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_REV=${BASE_REV:-b453e9b}
REPEATS=${REPEATS:-3}
SECONDS_BUDGET=${SECONDS_BUDGET:-40}
SKIP=${SKIP:-10}
STEPS=${STEPS:-50}
PY=${PY:-.venv/bin/python}
OUT=benchmarks/results/sentence_tasks.txt
JSONL=benchmarks/results/sentence_tasks.jsonl
WORKDIR=$(mktemp -d)
base=$WORKDIR/base
git worktree add -q --detach "$base" "$BASE_REV"
trap 'git worktree remove --force "$base"; rm -rf "$WORKDIR"' EXIT
export ATENTO_CACHE=$WORKDIR/cache  # the tree's stores: built once here, removed at the end
mkdir -p benchmarks/results
: > "$JSONL"
# name|config|overrides (the same on both sides; the configs read ../shared/data)
CASES=(
  "sst2_mlm|configs/sst2_mlm.yaml|"
  "sst2_bert|configs/sst2_bert.yaml|model.init_from="
  "trec_mlm|configs/trec_mlm.yaml|"
)
{
  echo "# $(date -u +'%Y-%m-%d %H:%M UTC') base $BASE_REV vs $(git rev-parse --short HEAD)+tree;" \
    "$(lscpu | sed -n 's/^Model name: *//p') x $(nproc); torch $($PY -c 'import torch; print(torch.__version__)')"
} | tee "$OUT"

side() {  # side base|new -> the source root of that side
  if [[ $1 == base ]]; then echo "$base"; else echo "."; fi
}

echo "## 1. first $STEPS training losses, fp32, seed 1" | tee -a "$OUT"
for case in "${CASES[@]}"; do
  IFS='|' read -r name cfg extra <<< "$case"
  for s in base new; do
    # shellcheck disable=SC2086
    ATENTO_SRC="$(side $s)/src" $PY benchmarks/first_losses.py "$(side $s)/$cfg" $extra \
      runtime.precision=fp32 runtime.threads=2 --steps "$STEPS" 2>/dev/null > "$WORKDIR/losses_$s.json"
  done
  $PY - "$WORKDIR/losses_base.json" "$WORKDIR/losses_new.json" "$name" <<'PY' | tee -a "$OUT"
import json, sys
a, b = (json.load(open(p))["losses"] for p in sys.argv[1:3])
same = a == b
print(f"{sys.argv[3]}: {len(a)} losses, identical={same}, first {a[0]:.6f} last {a[-1]:.6f}"
      + ("" if same else f" max |diff| {max(abs(x - y) for x, y in zip(a, b)):.3g}"))
PY
done

echo "## 2. training throughput (${SECONDS_BUDGET} s a run, first ${SKIP} s skipped)" | tee -a "$OUT"
for round in $(seq "$REPEATS"); do
  echo "# round $round" >> "$JSONL"
  for case in "${CASES[@]}"; do
    IFS='|' read -r name cfg extra <<< "$case"
    order="base new"; (( round % 2 == 0 )) && order="new base"
    for s in $order; do
      # shellcheck disable=SC2086
      $PY "$(side $s)/benchmarks/train_throughput.py" "$(side $s)/$cfg" $extra runtime.precision=fp32 \
        runtime.threads=2 --seconds "$SECONDS_BUDGET" --skip "$SKIP" --label "$s $name" 2>/dev/null \
        | tee -a "$JSONL"
    done
  done
done
$PY - "$JSONL" <<'PY' | tee -a "$OUT"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print("training units/s (MLM: masked tokens, classify: sentences): median (rounds)")
for name in sorted({r["label"].split(" ", 1)[1] for r in rows}):
    med = {}
    line = f"  {name:<10}"
    for s in ("base", "new"):
        vals = [r["target_tokens_per_second"] for r in rows if r["label"] == f"{s} {name}"]
        med[s] = statistics.median(vals)
        line += f" {s} {med[s]:>8.1f} ({', '.join(f'{v:.0f}' for v in vals)})"
    ratio = f"{med['new'] / med['base']:.3f}" if med["base"] else "n/a (raise SECONDS_BUDGET)"
    print(line + f"  new/base {ratio}")
PY
