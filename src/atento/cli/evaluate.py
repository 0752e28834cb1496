"""`atento evaluate RUN_DIR [task options] [--beam K] [--alpha A] [--json]`.

One command for every task: the run's task reads the options it needs (translation: `--src
FILE --ref FILE [--by-length FILE.png]`) and reports its own fields; this module adds the
common ones (`checkpoint_step`, `task`).
"""

from __future__ import annotations

import argparse

from atento.cli.common import (
    add_line_args,
    add_search_args,
    open_run,
    print_json,
    search_options,
    task_options,
)
from atento.outputs import output_path
from atento.registry import tasks


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="decode a test set and score it (BLEU and chrF, ...)")
    p.add_argument("run_dir", help="run directory written by `atento train`")
    add_search_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_line_args(p)
    for task in tasks().values():
        task.add_evaluate_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for option in ("--hyp-out", "--by-length"):  # the tasks' output files, before decoding
        if value := getattr(args, option[2:].replace("-", "_"), None):
            output_path(value, option=option)
    loaded = open_run(args.run_dir)
    task_options(args, loaded)  # another task's option would be silently ignored
    args.precision = search_options(args).precision  # the deprecated --bf16 read as this
    report = loaded.task.evaluate(loaded, args)
    report.update(task=loaded.cfg.task, checkpoint_step=loaded.step)
    if args.json:
        print_json(report)
    else:
        loaded.task.print_report(report)
    return 0
