#!/usr/bin/env bash
# A short check of the CUDA paths on a machine with a GPU and no network: it installs nothing and
# uses the torch it finds (plus atento's other dependencies, which must be importable: put them on
# PYTHONPATH if they are not installed). Trains the Transformer config for TRAIN_SECONDS on
# CUDA with runtime.precision=auto (bf16 where the card has it), validates, then decodes
# test_2016_flickr with beam 5, and prints the card's name, training tokens/s, peak GPU
# memory, validation BLEU and decoding speed. Finishes within 5 minutes.
# Usage: benchmarks/gpu_check.sh DATA_DIR   (DATA_DIR: the Multi30k folder, e.g. ../shared/data/multi30k)
set -euo pipefail
DATA=${1:?usage: benchmarks/gpu_check.sh DATA_DIR}
PY=${PYTHON:-python3}
TRAIN_SECONDS=${TRAIN_SECONDS:-120}
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
$PY - <<'PY'
import importlib, sys
missing = [m for m in ("torch", "sentencepiece", "sacrebleu", "yaml", "tqdm", "babel",
                       "matplotlib", "numpy", "safetensors") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"gpu_check: missing Python packages: {', '.join(missing)} (put them on PYTHONPATH)")
import torch
if not torch.cuda.is_available():
    sys.exit("gpu_check: no CUDA device visible to torch " + torch.__version__)
p = torch.cuda.get_device_properties(0)
print(f"gpu_check: {p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, "
      f"CUDA {torch.version.cuda}, bf16 {torch.cuda.is_bf16_supported()}")
PY
RUN=$(mktemp -d)/run
MINUTES=$($PY -c "print($TRAIN_SECONDS / 60)")
$PY -m atento train configs/multi30k_fr_en_transformer.yaml data.dir="$DATA" runtime.device=cuda \
  train.max_minutes="$MINUTES" train.valid_every=0 train.valid_sentences=500 --out "$RUN" \
  2> "$RUN.log" | tail -n 1 > "$RUN.train.json" || { tail -n 20 "$RUN.log"; exit 1; }
grep -m1 "runtime:" "$RUN.log" || true
$PY -m atento evaluate "$RUN" --src "$DATA/test_2016_flickr.fr.gz" --ref "$DATA/test_2016_flickr.en.gz" \
  --beam 5 --json 2>> "$RUN.log" > "$RUN.eval.json"
$PY - "$RUN" <<'PY'
import json, sys
run = sys.argv[1]
t = json.load(open(run + ".train.json"))
e = json.load(open(run + ".eval.json"))
rows = [json.loads(l) for l in open(run + "/metrics.jsonl")]
import torch
print(f"card: {torch.cuda.get_device_name(0)}")
print(f"training: {t['steps']} updates in {t['seconds']} s, {t['tokens_per_second']:.0f} target tokens/s, "
      f"{t['precision']}, peak GPU memory {t['peak_device_memory_mb']:.0f} MB, host {t['peak_memory_mb']:.0f} MB")
print(f"validation (500 sentences, greedy): BLEU {rows[-1]['bleu']}, loss {rows[-1]['loss']}")
print(f"test_2016_flickr beam 5: BLEU {e['bleu']}, {e['sentences_per_second']} sentences/s, "
      f"{e['output_pieces_per_second']:.0f} output pieces/s ({e['precision']})")
PY
