"""Pieces shared by the subcommands: opening a run, search options, reading input, JSON."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from atento import outputs
from atento.data.lines import (
    ON_BAD_UTF8,
    ON_EMPTY,
    ON_TOO_LONG,
    LinePolicy,
    read_text_lines,
)
from atento.errors import AtentoError, warn
from atento.options import NO_VIEW, SearchOptions
from atento.options import PRECISION_CHOICES as PRECISIONS_CHOICES
from atento.predictors.base import task_option_names
from atento.rundir import LoadedRun, load_run
from atento.runtime import Placement, apply_process_settings


def start_runtime(runtime, placement: Placement, *, training: bool, processes: int = 1) -> None:
    """Apply the CPU-only process settings of a config's `runtime` section (once, at start-up)
    and print what was chosen and why."""
    applied = apply_process_settings(runtime, placement, training=training, processes=processes)
    warn("runtime: " + "; ".join([placement.describe(), *applied]))


def open_run(run_dir: str, which: str = "best") -> LoadedRun:
    """`load_run` for a decoding command: the run's process settings applied once."""
    run = load_run(run_dir, which)
    lines = apply_process_settings(run.cfg.runtime, run.placement, training=False)
    if lines and sys.stderr.isatty():
        warn("runtime: " + "; ".join(lines))
    return run


def add_search_args(parser: argparse.ArgumentParser, *, nbest: bool = False) -> None:
    parser.add_argument("--beam", type=int, help="beam width K (1 = greedy); default: config")
    parser.add_argument("--alpha", type=float, help="length normalisation score/Ty^alpha")
    parser.add_argument("--batch-size", type=int, help="sentences per decoding batch")
    parser.add_argument(
        "--precision", choices=PRECISIONS_CHOICES,
        help="decoding precision (auto = bf16 where native); default: the run's search.precision",
    )  # fmt: skip
    parser.add_argument(
        "--bf16", action=argparse.BooleanOptionalAction,
        help="deprecated: --precision bf16 / --precision fp32",
    )  # fmt: skip
    parser.add_argument(
        "--workers", type=int, help="batches decoded at once on threads (default: config)"
    )
    parser.add_argument(
        "--min-len", type=int, help="no EOS before this many output pieces (default: config)"
    )
    if nbest:
        parser.add_argument("--nbest", type=int, help="hypotheses per sentence (<= beam)")


def search_options(args: argparse.Namespace) -> SearchOptions:
    """--beam/--alpha/--nbest/--batch-size/--workers/--precision as `SearchOptions` (checked
    by the predictor; the deprecated --bf16 / --no-bf16 read as --precision)."""
    precision = getattr(args, "precision", None)
    if getattr(args, "bf16", None) is not None:
        old = "--bf16" if args.bf16 else "--no-bf16"
        new = "bf16" if args.bf16 else "fp32"
        warn(f"{old} is deprecated; use --precision {new} (read as that)")
        precision = precision or new
    return replace(SearchOptions.of(args), precision=precision)


def decoder(run: LoadedRun, args: argparse.Namespace, *, command: str, view=NO_VIEW):
    """(predictor, translator) of a run whose task offers `translate` (else a one-line error
    naming `command`), with the command's search options and `view`."""
    predictor = run.predictor.require("translate", command=command)
    return predictor, predictor.translator(search_options(args), view)


def task_options(args: argparse.Namespace, run: LoadedRun) -> None:
    """A one-line error for an option of another task's (it would be silently ignored)."""
    names = task_option_names()
    run.predictor.check_reads({k: v for k, v in vars(args).items() if k in names})


def add_line_args(parser: argparse.ArgumentParser, *, too_long: bool = True) -> None:
    """The shared line policies (`atento.data.lines`) of a line-oriented command."""
    group = parser.add_argument_group("input lines (one output line per input line)")
    group.add_argument(
        "--on-empty",
        choices=ON_EMPTY,
        default="emit-empty",
        help="an empty line: an empty output line (default) or an error",
    )
    group.add_argument(
        "--on-bad-utf8",
        choices=ON_BAD_UTF8,
        default="error",
        help="invalid UTF-8: exit 2 naming line and byte (default), or U+FFFD",
    )
    if too_long:
        group.add_argument(
            "--on-too-long",
            choices=ON_TOO_LONG,
            default="error",
            help="longer than the model takes: error (default) or keep the start",
        )


def line_policy(args: argparse.Namespace) -> LinePolicy:
    """The `LinePolicy` of a command's --on-* options (defaults where it has none)."""
    return LinePolicy.of(args)


def read_input(path: str | None, policy: LinePolicy | None = None) -> list[str]:
    """Lines from FILE, or from stdin when no file is given; input with no lines at all is an
    error."""
    lines = read_text_lines(path or None, policy or LinePolicy())
    if not lines:
        raise AtentoError(f"empty input: {path or 'stdin'} has no lines")
    return lines


def print_json(obj: dict) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=None))


def write_text(path: str | Path, lines: list[str]) -> None:
    """`lines` as a UTF-8 file under the output-path checks (`atento.outputs`)."""
    outputs.write_text(path, "".join(line + "\n" for line in lines))
