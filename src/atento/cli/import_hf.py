"""`atento import hf MODEL_DIR --out RUN_DIR`: a Hugging Face model directory as an atento run.

Nothing is downloaded: fetch the directory with the hub's own tool first, e.g.
`hf download gpt2 --local-dir models/gpt2`. See `atento.hf` for the supported families.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="import a pretrained model from another format")
    formats = p.add_subparsers(dest="format", metavar="FORMAT", required=True)
    hf = formats.add_parser("hf", help="a local Hugging Face model directory (GPT-2, BERT, Marian)")
    hf.add_argument("model_dir", help="directory with config.json, the weights and tokenizer files")
    hf.add_argument("--out", required=True, help="the run directory to write")
    hf.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from atento.hf import convert
    from atento.hf.files import write_run

    imported = convert(args.model_dir)
    path = write_run(imported, Path(args.out))
    for note in imported.notes:
        print(f"note: {note}")
    print(f"imported {args.model_dir} -> {path}")
    return 0
