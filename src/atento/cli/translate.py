"""`atento translate RUN_DIR [--beam K] [--alpha A] [--nbest N] [--batch-size N] [-i F] [-o F]`."""

from __future__ import annotations

import argparse
import sys

from atento.cli.common import (
    add_line_args,
    add_search_args,
    decoder,
    line_policy,
    open_run,
    read_input,
    write_text,
)
from atento.outputs import output_path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("translate", help="translate sentences (stdin or -i) with a trained run "
                       "(a language model: continue each line, beam-searched)")  # fmt: skip
    p.add_argument("run_dir", help="run directory written by `atento train` (translation, lm)")
    add_search_args(p, nbest=True)
    p.add_argument("-i", "--input", help="source file, one sentence per line (default: stdin)")
    p.add_argument("-o", "--output", help="output file (default: stdout)")
    add_line_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.output:  # checked before any decoding
        output_path(args.output, option="--output")
    loaded = open_run(args.run_dir)
    predictor, translator = decoder(loaded, args, command="translate")
    policy = line_policy(args)
    sentences = read_input(args.input, policy)
    results = predictor.translate(
        sentences, translator, policy, name=args.input or "stdin", progress=sys.stderr.isatty()
    )
    decode = predictor.decode
    if translator.search.nbest == 1:  # an empty input line (no hypotheses) gives ""
        lines = [decode(hyps[0].tokens) if hyps else "" for hyps in results]
    else:  # Moses n-best format: index ||| hypothesis ||| normalised score
        lines = [
            f"{i} ||| {decode(h.tokens)} ||| {h.score:.4f}"
            for i, hyps in enumerate(results)
            for h in hyps
        ]
        lines += [f"{i} |||  ||| 0.0000" for i, hyps in enumerate(results) if not hyps]
        lines.sort(key=lambda line: int(line.split(" ", 1)[0]))  # stable: n-best order kept
    if args.output:
        write_text(args.output, lines)
    else:
        sys.stdout.write("".join(line + "\n" for line in lines))
    return 0
