#!/usr/bin/env bash
# Tiny Shakespeare, characters, nanoGPT's CPU recipe, side by side one after the other:
# nanoGPT (../shared/peers/run_nanogpt.sh: 2,000 iterations, its loss estimated on 20 random
# batches) and `atento train configs/shakespeare_char.yaml` (its validation loss over the WHOLE
# validation split). Both timelines are wall-clock seconds since training started, read from
# the logs as they are printed. Reports when atento first reaches validation loss <= 1.88 and
# when nanoGPT reaches its final loss, and their ratio.
# Usage: [ROUNDS=1] [THREADS=2] benchmarks/lm_vs_nanogpt.sh   (run it alone on the machine)
# Results: benchmarks/results/lm_vs_nanogpt.txt
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-1}
OUT=benchmarks/results/lm_vs_nanogpt.txt
PY=.venv/bin/python
WORK=${WORK:-$(mktemp -d)}
{
  echo "# $(date -u +'%Y-%m-%d %H:%M UTC') $(lscpu | sed -n 's/^Model name: *//p') x $(nproc); torch $($PY -c 'import torch; print(torch.__version__)'); $THREADS threads"
  echo "# lscpu flags: $(grep -o -w -E 'avx2|avx512f|avx512_bf16|amx_bf16|amx_tile' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  $PY ../shared/peers/cpu_busy.py 2>/dev/null || true
} | tee "$OUT"
# The shared copy of nanoGPT's data folder may hold its link to tiny Shakespeare as a plain
# text file (a symlink checked out as text): run a copy with the real text in its place.
PEERS=$WORK/peers
rm -rf "$PEERS"; mkdir -p "$PEERS"
cp -rL ../shared/peers/nanogpt ../shared/peers/run_nanogpt.sh "$PEERS/"
chmod -R u+w "$PEERS"
cp ../shared/data/tinyshakespeare/input.txt "$PEERS/nanogpt/data/shakespeare_char/input.txt"
for round in $(seq "$ROUNDS"); do
  echo "## round $round: nanoGPT" | tee -a "$OUT"
  WORK=$WORK THREADS=$THREADS bash "$PEERS/run_nanogpt.sh" | tee -a "$OUT"
  echo "## round $round: atento" | tee -a "$OUT"
  rm -rf "$WORK/atento_run"
  $PY -u -m atento train configs/shakespeare_char.yaml runtime.threads="$THREADS" \
    --out "$WORK/atento_run" > "$WORK/atento_run.log" 2>&1
  grep -E "parameters;|precision" "$WORK/atento_run.log" | head -3 | tee -a "$OUT"
  # the run's own clock: seconds of training up to each validated step (earlier validations
  # included), from metrics.jsonl (log lines reach a pipe late, so they are not timed here)
  $PY -c 'import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print("%.1fs step %d epoch %d: valid loss %.4f" % (r["seconds"], r["step"], r["epoch"], r["loss"]))
' "$WORK/atento_run/metrics.jsonl" | tee -a "$OUT"
done
$PY - "$OUT" <<'PY' | tee -a "$OUT"
import re, sys
nano, ours = [], []
section = None
for line in open(sys.argv[1]):
    if line.startswith("## "):
        section = "nano" if "nanoGPT" in line else "ours"
        (nano if section == "nano" else ours).append([])
        continue
    m = re.match(r"([\d.]+)s step (\d+): train loss [\d.]+, val loss ([\d.]+)", line)
    if m and section == "nano":
        nano[-1].append((float(m[1]), int(m[2]), float(m[3])))
    m = re.match(r"([\d.]+)s step (\d+) epoch \d+: valid loss ([\d.]+)", line)
    if m and section == "ours":
        ours[-1].append((float(m[1]), int(m[2]), float(m[3])))
for r, (n, o) in enumerate(zip(nano, ours), 1):
    nt, ns, nl = n[-1]
    hit = next(((t, s, l) for t, s, l in o if l <= 1.88), None)
    print(f"round {r}: nanoGPT final val loss {nl:.4f} at step {ns}, {nt:.1f} s")
    if hit:
        print(f"round {r}: atento val loss {hit[2]:.4f} <= 1.88 at step {hit[1]}, {hit[0]:.1f} s"
              f" -> time ratio atento / nanoGPT {hit[0] / nt:.3f}")
    else:
        print(f"round {r}: atento did not reach 1.88 (best {min(l for _, _, l in o):.4f})")
    print(f"round {r}: atento final val loss {o[-1][2]:.4f} at step {o[-1][1]}, {o[-1][0]:.1f} s")
PY
