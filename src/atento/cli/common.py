"""Pieces shared by the subcommands: opening a run, search options, reading input, JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from atento import outputs
from atento.data.lines import (
    ON_BAD_UTF8,
    ON_EMPTY,
    ON_TOO_LONG,
    LinePolicy,
    fit_lengths,
    read_text_lines,
)
from atento.errors import AtentoError, warn
from atento.inference import Translator
from atento.rundir import LoadedRun, load_run
from atento.runtime import PRECISIONS_CHOICES, Placement, apply_process_settings


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
    if nbest:
        parser.add_argument("--nbest", type=int, help="hypotheses per sentence (<= beam)")


def configured(translator: Translator, args: argparse.Namespace) -> Translator:
    """Apply --beam/--alpha/--nbest/--batch-size to a translator, checking their ranges."""
    t = translator.with_search(
        beam=args.beam, alpha=args.alpha, batch_size=args.batch_size,
        nbest=getattr(args, "nbest", None), workers=getattr(args, "workers", None),
    )  # fmt: skip
    precision = getattr(args, "precision", None)
    if getattr(args, "bf16", None) is not None:
        old = "--bf16" if args.bf16 else "--no-bf16"
        new = "bf16" if args.bf16 else "fp32"
        warn(f"{old} is deprecated; use --precision {new} (read as that)")
        precision = precision or new
    if precision is not None:
        t = t.with_precision(precision)
    s = t.search
    if s.beam < 1:
        raise AtentoError(f"--beam must be at least 1, got {s.beam}")
    if s.alpha < 0:
        raise AtentoError(f"--alpha must be >= 0, got {s.alpha}")
    if s.batch_size < 1:
        raise AtentoError(f"--batch-size must be at least 1, got {s.batch_size}")
    if s.workers < 1:
        raise AtentoError(f"--workers must be at least 1, got {s.workers}")
    if getattr(args, "nbest", None) is None:
        t = t.with_search(nbest=min(s.nbest, s.beam))
    elif not 1 <= s.nbest <= s.beam:
        raise AtentoError(f"--nbest must be between 1 and the beam width {s.beam}")
    return t


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
    return LinePolicy(
        on_empty=getattr(args, "on_empty", "emit-empty"),
        on_bad_utf8=getattr(args, "on_bad_utf8", "error"),
        on_too_long=getattr(args, "on_too_long", "error"),
    )


def read_input(path: str | None, policy: LinePolicy | None = None) -> list[str]:
    """Lines from FILE, or from stdin when no file is given; input with no lines at all is an
    error."""
    lines = read_text_lines(path or None, policy or LinePolicy())
    if not lines:
        raise AtentoError(f"empty input: {path or 'stdin'} has no lines")
    return lines


def encode_lines(
    tok, lines: list[str], limit: int | None, policy: LinePolicy, *, name: str
) -> dict[int, list[int]]:
    """The non-empty `lines` encoded and fitted to the model's `limit` under `policy`, keyed
    by their index; empty lines (kept under --on-empty emit-empty) are left out."""
    keep = [i for i, line in enumerate(lines) if line]
    ids = fit_lengths(tok.encode_batch([lines[i] for i in keep]), limit, policy, name=name,
                      numbers=[i + 1 for i in keep])  # fmt: skip
    return dict(zip(keep, ids, strict=True))


def translate_lines(
    translator: Translator, lines: list[str], policy: LinePolicy, *, name: str,
    progress: bool = False,
) -> list[list]:  # fmt: skip
    """n-best hypotheses per line, in order; an empty line gets an empty list."""
    encoded = encode_lines(translator.src_tok, lines, translator.source_limit, policy, name=name)
    keys = list(encoded)
    hyps = translator.translate_ids([encoded[i] for i in keys], progress=progress)
    results: list[list] = [[] for _ in lines]
    for i, h in zip(keys, hyps, strict=True):
        results[i] = h
    return results


def print_json(obj: dict) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=None))


def write_text(path: str | Path, lines: list[str]) -> None:
    """`lines` as a UTF-8 file under the output-path checks (`atento.outputs`)."""
    outputs.write_text(path, "".join(line + "\n" for line in lines))
