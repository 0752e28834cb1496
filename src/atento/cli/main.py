"""`atento` command line: one thin module per subcommand over the library."""

from __future__ import annotations

import argparse
import sys

from atento import __version__
from atento.errors import AtentoError
from atento.runtime import tune_allocator

COMMANDS = (
    "demo", "train", "translate", "evaluate", "attention", "score", "compare-length",
    "beam-sweep", "search-errors",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    from atento.cli import (
        attention,
        beam_sweep,
        compare_length,
        demo,
        evaluate,
        score,
        search_errors,
        train,
        translate,
    )

    parser = argparse.ArgumentParser(
        prog="atento", description="Train, decode and inspect attention-based sequence models."
    )
    parser.add_argument("--version", action="version", version=f"atento {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (
        demo, train, translate, evaluate, attention, score, compare_length, beam_sweep,
        search_errors,
    ):  # fmt: skip
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    tune_allocator()
    try:
        return int(args.run(args) or 0)
    except AtentoError as exc:
        print(f"atento {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("atento: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
