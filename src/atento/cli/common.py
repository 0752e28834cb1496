"""Pieces shared by the subcommands: search options, reading input, printing JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from atento.data.parallel import read_lines
from atento.errors import AtentoError
from atento.inference import Translator


def add_search_args(parser: argparse.ArgumentParser, *, nbest: bool = False) -> None:
    parser.add_argument("--beam", type=int, help="beam width K (1 = greedy); default: config")
    parser.add_argument("--alpha", type=float, help="length normalisation score/Ty^alpha")
    parser.add_argument("--batch-size", type=int, help="sentences per decoding batch")
    parser.add_argument(
        "--bf16", action=argparse.BooleanOptionalAction,
        help="bfloat16 autocast while decoding (fast on CPUs with AMX); default: config",
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
        nbest=getattr(args, "nbest", None), bf16=getattr(args, "bf16", None),
        workers=getattr(args, "workers", None),
    )  # fmt: skip
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


def read_input(path: str | None) -> list[str]:
    """Lines from FILE, or from stdin when no file is given; empty input is an error."""
    lines = read_lines(path) if path else [line.rstrip("\n") for line in sys.stdin]
    if not lines:
        raise AtentoError(f"empty input: {path or 'stdin'} has no lines")
    return lines


def print_json(obj: dict) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=None))


def write_text(path: str | Path, lines: list[str]) -> None:
    Path(path).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
