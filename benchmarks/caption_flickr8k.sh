#!/usr/bin/env bash
# Show, Attend and Tell on Flickr8k: feature extraction timed, a training budget, dev BLEU-1..4
# (beam 3, all 5 references), the search-error table and a beam sweep, and the README pictures.
# Usage: MINUTES=30 benchmarks/caption_flickr8k.sh   (results: benchmarks/results/caption_flickr8k.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-30}
RUN=${RUN:-runs/flickr8k_caption}
DATA=../shared/data/flickr8k
BIN=.venv/bin
# 1. features of the 7,000 images (a second run shows the cached path)
$BIN/python benchmarks/caption_features.py "$DATA"
# 2. training (the feature cache is warm: extraction is not in the budget); peak RSS by time -v
/usr/bin/time -v $BIN/atento train configs/flickr8k_caption.yaml train.max_minutes="$MINUTES" --out "$RUN"
# 3. dev: BLEU-1..4 at beam 3 (sacreBLEU, and coco-caption's BLEU, CIDEr-D and METEOR, the
#    latter where java is on PATH), the search errors, the beam sweep
$BIN/atento evaluate "$RUN" --split dev --beam 3 --json
$BIN/atento search-errors "$RUN" --split dev --beam 3 --beams 1,3,10 --json
$BIN/atento beam-sweep "$RUN" --split dev --beams 1,2,3,5,10 --json
lscpu | grep 'Model name'
grep -o -w -E 'avx2|avx512f|avx512_bf16|amx_bf16|amx_tile' /proc/cpuinfo | sort -u
