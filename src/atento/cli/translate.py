"""`atento translate RUN_DIR [--beam K] [--alpha A] [--nbest N] [--batch-size N] [-i F] [-o F]`."""

from __future__ import annotations

import argparse
import sys

from atento.cli.common import add_search_args, configured, read_input, write_text
from atento.inference import load_run


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("translate", help="translate sentences (stdin or -i) with a trained run")
    p.add_argument("run_dir", help="run directory written by `atento train`")
    add_search_args(p, nbest=True)
    p.add_argument("-i", "--input", help="source file, one sentence per line (default: stdin)")
    p.add_argument("-o", "--output", help="output file (default: stdout)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    loaded = load_run(args.run_dir)
    translator = configured(loaded.translator(), args)
    sentences = read_input(args.input)
    results = translator.translate(sentences, progress=sys.stderr.isatty())
    decode = loaded.tgt_tok.decode
    if translator.search.nbest == 1:
        lines = [decode(hyps[0].tokens) for hyps in results]
    else:  # Moses n-best format: index ||| hypothesis ||| normalised score
        lines = [
            f"{i} ||| {decode(h.tokens)} ||| {h.score:.4f}"
            for i, hyps in enumerate(results)
            for h in hyps
        ]
    if args.output:
        write_text(args.output, lines)
    else:
        sys.stdout.write("".join(line + "\n" for line in lines))
    return 0
