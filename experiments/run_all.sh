#!/usr/bin/env bash
# The lecture's experiments (issue 3, item 6), one command each, run from the repository root:
#
#   experiments/run_all.sh a      # attention vs no attention: BLEU by source length
#   experiments/run_all.sh b      # the seven attention settings, same updates: BLEU, tokens/s, params
#   experiments/run_all.sh c      # BLEU and speed against beam width 1-20 and alpha
#   experiments/run_all.sh d      # search-error fraction against beam width (+ exact search)
#   experiments/run_all.sh all    # a, b, c, d in order
#
# Budgets are variables: MINUTES=10 experiments/run_all.sh a, B_STEPS=400 experiments/run_all.sh b.
# a trains $RUNS/exp_att_{none,additive} for MINUTES each (A_EXTRA adds overrides); b trains
# $RUNS/exp_b_<attention> for B_STEPS updates each, B_LANES at a time. Results (JSON, Markdown,
# PNG) go to experiments/results/. Experiments c and d analyse exp_att_additive, so run a first.
# Wall-clock budgets depend on the machine: results/machine.txt records it on every call; copy
# it next to each table in experiments/README.md.
set -euo pipefail

DATA=${DATA:-../shared/data/multi30k}        # relative to the repository root
MINUTES=${MINUTES:-30}                       # training budget per model, a and b
THREADS=${THREADS:-2}                        # torch threads for training and decoding
CONFIG=${CONFIG:-configs/multi30k_fr_en_rnn.yaml}
ATENTO=${ATENTO:-.venv/bin/atento}
PY=${PY:-.venv/bin/python}
RESULTS=${RESULTS:-experiments/results}
RUNS=${RUNS:-runs}
TEST_SRC=${TEST_SRC:-$DATA/test_2016_flickr.fr.gz}
TEST_REF=${TEST_REF:-$DATA/test_2016_flickr.en.gz}
VAL_SRC=${VAL_SRC:-$DATA/val.fr.gz}
VAL_REF=${VAL_REF:-$DATA/val.en.gz}
BEAM=${BEAM:-5}
ALPHA=${ALPHA:-1.0}
SWEEP_BEAMS=${SWEEP_BEAMS:-1,2,3,5,10,15,20}
SWEEP_ALPHAS=${SWEEP_ALPHAS:-0,0.5,0.7,1.0}
ERROR_BEAMS=${ERROR_BEAMS:-1,2,3,5,10,20}
EXACT_MAX_LEN=${EXACT_MAX_LEN:-12}           # source pieces; exact search only on short ones
EXACT_SECONDS=${EXACT_SECONDS:-10}           # time limit per sentence
ATTENTIONS=${ATTENTIONS:-none cosine additive location general dot scaled_dot}
B_STEPS=${B_STEPS:-700}                      # b: updates per attention setting
B_LANES=${B_LANES:-2}                        # b: trainings at once
B_THREADS=${B_THREADS:-1}                    # b: torch threads per training

cd "$(dirname "$0")/.."
mkdir -p "$RESULTS"
export OMP_NUM_THREADS=$THREADS

machine() {
  {
    date -u +"%Y-%m-%d %H:%M UTC"
    echo "cpu: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p') x $(nproc --all) cores"
    echo "torch $($PY -c 'import torch; print(torch.__version__)'), threads $THREADS"
    echo "budget: a $MINUTES min per model; b $B_STEPS updates per model, $B_LANES at a time x $B_THREADS thread(s); beam $BEAM, alpha $ALPHA"
  } > "$RESULTS/machine.txt"
}

train() {  # train ATTENTION: $RUNS/exp_att_ATTENTION from $CONFIG with a $MINUTES budget
  local out=$RUNS/exp_att_$1
  if [[ -f $out/checkpoint_best.pt || -f $out/checkpoint_last.pt ]]; then
    echo "== $out exists, not retraining (delete it to rerun)"
    return
  fi
  # shellcheck disable=SC2086  # A_EXTRA: more overrides, e.g. "train.max_minutes=0 train.max_steps=2336"
  $ATENTO train "$CONFIG" data.dir="$DATA" model.attention="$1" train.max_minutes="$MINUTES" \
    runtime.threads="$THREADS" ${A_EXTRA:-} --out "$out" | tail -n 1 > "$RESULTS/train_$1.json"
}

exp_a() {  # attention vs no attention, BLEU by source length on the test set
  for att in none additive; do
    train "$att"
    $ATENTO evaluate "$RUNS/exp_att_$att" --src "$TEST_SRC" --ref "$TEST_REF" --beam "$BEAM" \
      --alpha "$ALPHA" --json --by-length "$RESULTS/a_by_length_$att.png" > "$RESULTS/a_eval_$att.json"
  done
  $ATENTO compare-length $RUNS/exp_att_none $RUNS/exp_att_additive --labels "no attention,attention" \
    --src "$TEST_SRC" --ref "$TEST_REF" --beam "$BEAM" --alpha "$ALPHA" \
    --out "$RESULTS/a_bleu_by_length.png" --json > "$RESULTS/a_compare_length.json"
}

train_b() {  # train_b ATTENTION: $RUNS/exp_b_ATTENTION, $B_STEPS updates on $B_THREADS threads
  local out=$RUNS/exp_b_$1
  if [[ ! -f $out/checkpoint_best.pt ]]; then
    rm -rf "$out"
    OMP_NUM_THREADS=$B_THREADS $ATENTO train "$CONFIG" data.dir="$DATA" model.attention="$1" \
      train.max_minutes=0 train.max_steps="$B_STEPS" train.valid_every="$((B_STEPS / 2))" \
      runtime.threads="$B_THREADS" --out "$out" | tail -n 1 > "$RESULTS/b_train_$1.json"
  fi
  OMP_NUM_THREADS=$B_THREADS $ATENTO evaluate "$out" --src "$TEST_SRC" --ref "$TEST_REF" \
    --beam "$BEAM" --alpha "$ALPHA" --json > "$RESULTS/b_eval_$1.json"
}

exp_b() {  # every attention setting with the same budget: BLEU, training tokens/s, parameters
  # A step budget (the same number of updates for all seven, whatever the machine's load), run
  # $B_LANES at a time on $B_THREADS thread(s) each; tokens/s are measured under that load.
  for att in $ATTENTIONS; do
    while (( $(jobs -rp | wc -l) >= B_LANES )); do wait -n; done
    train_b "$att" > "$RUNS/exp_b_$att.log" 2>&1 &
  done
  wait
  RESULTS=$RESULTS ATTENTIONS=$ATTENTIONS $PY - > "$RESULTS/b_table.md" <<'PYEOF'
import json, os
res = os.environ["RESULTS"]
print("| attention | test BLEU | chrF | train tokens/s | parameters | steps | best val BLEU |")
print("|---|---|---|---|---|---|---|")
for att in os.environ["ATTENTIONS"].split():
    t = json.load(open(f"{res}/b_train_{att}.json"))
    e = json.load(open(f"{res}/b_eval_{att}.json"))
    print(f"| {att} | {e['bleu']:.2f} | {e['chrf']:.2f} | {t['tokens_per_second']:.0f} "
          f"| {t['parameters']:,} | {t['steps']} | {t['best_bleu']:.2f} |")
PYEOF
  cat "$RESULTS/b_table.md"
}

exp_c() {  # beam width 1-20 x alpha on the validation set, with run a's attention model
  $ATENTO beam-sweep $RUNS/exp_att_additive --src "$VAL_SRC" --ref "$VAL_REF" \
    --beams "$SWEEP_BEAMS" --alphas "$SWEEP_ALPHAS" --plot "$RESULTS/c_beam_sweep.png" --json \
    > "$RESULTS/c_beam_sweep.json"
}

exp_d() {  # search-error fraction against beam width, plus exact search on short sentences
  $ATENTO search-errors $RUNS/exp_att_additive --src "$VAL_SRC" --ref "$VAL_REF" --beam "$BEAM" \
    --alpha "$ALPHA" --beams "$ERROR_BEAMS" --report "$RESULTS/d_search_errors.md" --json \
    > "$RESULTS/d_search_errors.json"
  # exact search is tractable with alpha = 0 (tight bound); see src/atento/analysis/exact.py
  $ATENTO search-errors $RUNS/exp_att_additive --src "$VAL_SRC" --ref "$VAL_REF" --beam "$BEAM" \
    --alpha 0 --beams "$ERROR_BEAMS" --exact --exact-max-len "$EXACT_MAX_LEN" \
    --exact-seconds "$EXACT_SECONDS" --json > "$RESULTS/d_search_errors_exact_alpha0.json"
}

machine
case "${1:-}" in
  a) exp_a ;;
  b) exp_b ;;
  c) exp_c ;;
  d) exp_d ;;
  all) exp_a; exp_b; exp_c; exp_d ;;
  *) echo "usage: $0 a|b|c|d|all   (variables: MINUTES DATA THREADS BEAM ALPHA ...)" >&2; exit 2 ;;
esac
