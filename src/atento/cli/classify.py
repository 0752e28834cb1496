"""`atento classify RUN_DIR [-i FILE] [--batch-size N]`: a label and its probability per line.

Reads sentences from FILE (or stdin), one per line, and prints `label<TAB>probability` for
each, in order: one output line per input line, always (an empty line gives an empty line
under `--on-empty emit-empty`, the default; the shared line policies of `atento.data.lines`).
The label is the argmax of the class probabilities that `atento evaluate` scores.
"""

from __future__ import annotations

import argparse
import sys

from atento.cli.common import add_line_args, encode_lines, line_policy, open_run, read_input
from atento.errors import AtentoError
from atento.runtime import PRECISIONS_CHOICES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classify", help="label sentences with a classification run")
    p.add_argument("run_dir", help="run directory written by `atento train` (task: classify)")
    p.add_argument("-i", "--input", help="sentences, one per line (default: stdin)")
    p.add_argument("--batch-size", type=int, default=64, help="sentences per batch")
    p.add_argument("--precision", choices=PRECISIONS_CHOICES, help="default: the run's")
    add_line_args(p)
    p.set_defaults(run=run)


def classify_lines(loaded, lines: list[str], policy, *, name: str, batch_size: int = 64):
    """(label, probability) per line, None for an empty line."""
    from atento.tasks.classify import predict

    task = loaded.task
    encoded = encode_lines(task.tokenizers["text"], lines, task.piece_limit(), policy, name=name)
    keys = list(encoded)
    probs = predict(loaded.model, [task.sequence(encoded[i]) for i in keys], loaded.placement,
                    batch_size=batch_size)  # fmt: skip
    labels = task.tokenizers["labels"].labels
    out: list[tuple[str, float] | None] = [None] * len(lines)
    for row, i in enumerate(keys):
        p, c = probs[row].max(-1)
        out[i] = (labels[int(c)], float(p))
    return out


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise AtentoError(f"--batch-size must be at least 1, got {args.batch_size}")
    policy = line_policy(args)
    lines = read_input(args.input, policy)
    loaded = open_run(args.run_dir)
    if loaded.cfg.task != "classify":
        raise AtentoError(f"{args.run_dir} is a {loaded.cfg.task} run; classify needs "
                          f"task: classify")  # fmt: skip
    if args.precision:
        loaded.placement = loaded.placement.with_precision(args.precision, key="--precision")
    results = classify_lines(loaded, lines, policy, name=args.input or "stdin",
                             batch_size=args.batch_size)  # fmt: skip
    out = sys.stdout
    for result in results:
        out.write("\n" if result is None else f"{result[0]}\t{result[1]:.4f}\n")
    out.flush()
    return 0
