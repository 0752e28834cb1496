"""`atento score RUN_DIR --src F --ref F [--normalised] [--alpha A] [--per-token]`.

Prints one teacher-forced log P(ref | src) per line (EOS included), or with --normalised the
length-normalised score log P / Ty^alpha that beam search ranks by.
"""

from __future__ import annotations

import argparse
import sys

from atento.cli.analysis_io import read_pairs, show_progress
from atento.errors import AtentoError
from atento.inference import load_run


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="teacher-forced log P(reference | source), one per line")
    p.add_argument("run_dir", help="run directory written by `atento train`")
    p.add_argument("--src", required=True, help="source file (plain or .gz)")
    p.add_argument("--ref", required=True, help="reference file, line-aligned with --src")
    p.add_argument(
        "--normalised", action="store_true", help="print log P / Ty^alpha (the beam's objective)"
    )
    p.add_argument("--alpha", type=float, help="length normalisation alpha; default: config")
    p.add_argument("--per-token", action="store_true", help="also print each token's log-prob")
    p.add_argument("--batch-size", type=int, default=64, help="sentences per batch")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from atento.analysis.scoring import score_sequences
    from atento.search import LengthPenalty

    loaded = load_run(args.run_dir)
    sources, refs = read_pairs(args.src, args.ref)
    if args.batch_size < 1:
        raise AtentoError(f"--batch-size must be at least 1, got {args.batch_size}")
    alpha = loaded.cfg.search.alpha if args.alpha is None else args.alpha
    if alpha < 0:
        raise AtentoError(f"--alpha must be >= 0, got {alpha}")
    scores = score_sequences(
        loaded.model, loaded.src_tok.encode_batch(sources), loaded.tgt_tok.encode_batch(refs),
        length_penalty=LengthPenalty(alpha), batch_size=args.batch_size,
        progress=show_progress(args),
    )  # fmt: skip
    lines = []
    for s in scores:
        value = f"{s.score if args.normalised else s.log_prob:.6f}"
        if args.per_token:
            value += "\t" + " ".join(f"{x:.4f}" for x in s.token_log_probs)
        lines.append(value)
    sys.stdout.write("".join(line + "\n" for line in lines))
    return 0
