"""`atento score RUN_DIR --src F --ref F [--normalised] [--alpha A] [--per-token]`.

Prints one teacher-forced log P(ref | src) per line (EOS included), or with --normalised the
length-normalised score log P / Ty^alpha that beam search ranks by.
"""

from __future__ import annotations

import argparse
import sys

from atento.cli.analysis_io import read_pairs, show_progress
from atento.cli.common import add_line_args, line_policy, open_run
from atento.data.lines import fit_lengths
from atento.options import SearchOptions


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
    add_line_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from atento.analysis.scoring import score_sequences, target_ids
    from atento.models.base import length_limit
    from atento.search import LengthPenalty

    loaded = open_run(args.run_dir)
    predictor = loaded.predictor.require("score", command="score")
    policy = line_policy(args)
    sources, refs = read_pairs(args.src, args.ref, policy)
    search = SearchOptions(alpha=args.alpha, batch_size=args.batch_size)
    alpha = search.resolve(loaded.cfg.search).alpha
    src = predictor.encode(sources, policy, name=args.src)
    ref = fit_lengths(loaded.tgt_tok.encode_batch([r for r in refs if r]),
                      length_limit(loaded.model), policy, name=args.ref,
                      numbers=[i + 1 for i, r in enumerate(refs) if r])  # fmt: skip
    ref = dict(zip([i for i, r in enumerate(refs) if r], ref, strict=True))
    keys = [i for i in src if i in ref]  # a pair with an empty side gets an empty line
    scores = score_sequences(
        loaded.model, [src[i] for i in keys], [ref[i] for i in keys],
        length_penalty=LengthPenalty(alpha), batch_size=args.batch_size,
        progress=show_progress(args), **target_ids(loaded.tgt_tok.search_ids()),
        collate=loaded.translator().collate,
    )  # fmt: skip
    lines = [""] * len(sources)
    for i, s in zip(keys, scores, strict=True):
        value = f"{s.score if args.normalised else s.log_prob:.6f}"
        if args.per_token:
            value += "\t" + " ".join(f"{x:.4f}" for x in s.token_log_probs)
        lines[i] = value
    sys.stdout.write("".join(line + "\n" for line in lines))
    return 0
