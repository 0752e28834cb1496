"""`atento classify RUN_DIR [-i FILE] [--batch-size N]`: a label and its probability per line.

Reads sentences from FILE (or stdin), one per line, and prints `label<TAB>probability` for
each, in order: one output line per input line, always (an empty line gives an empty line
under `--on-empty emit-empty`, the default; the shared line policies of `atento.data.lines`).
The label is the argmax of the class probabilities that `atento evaluate` scores.
"""

from __future__ import annotations

import argparse
import sys

from atento.cli.common import add_line_args, line_policy, open_run, read_input
from atento.options import PRECISION_CHOICES as PRECISIONS_CHOICES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classify", help="label sentences with a classification run")
    p.add_argument("run_dir", help="run directory written by `atento train` (task: classify)")
    p.add_argument("-i", "--input", help="sentences, one per line (default: stdin)")
    p.add_argument("--batch-size", type=int, default=64, help="sentences per batch")
    p.add_argument("--precision", choices=PRECISIONS_CHOICES, help="default: the run's")
    add_line_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    policy = line_policy(args)
    lines = read_input(args.input, policy)
    loaded = open_run(args.run_dir)
    predictor = loaded.predictor.require("classify", command="classify")
    results = predictor.classify(lines, policy, name=args.input or "stdin",
                                 batch_size=args.batch_size, precision=args.precision)  # fmt: skip
    out = sys.stdout
    for r in results:
        out.write("\n" if r is None else f"{r.label}\t{r.probability:.4f}\n")
    out.flush()
    return 0
