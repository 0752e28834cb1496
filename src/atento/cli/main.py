"""`atento` command line: one thin module per subcommand over the library.

The subcommands are the modules listed in `atento.cli.commands.COMMAND_MODULES`; each has
`register(sub)`. Process-wide settings (threads, allocator, oneDNN's kernel cache) are applied
by the commands that train or decode, once, from the config's `runtime` section
(`atento.cli.common.start_runtime`), never on import.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from atento import __version__
from atento.cli.commands import COMMAND_MODULES
from atento.errors import AtentoError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="atento", description="Train, decode and inspect attention-based sequence models."
    )
    parser.add_argument("--version", action="version", version=f"atento {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
