"""`atento` command line: one thin module per subcommand over the library.

The subcommands are the modules listed in `atento.cli.commands.COMMAND_MODULES`; each has
`register(sub)`. Process-wide settings (threads, allocator, oneDNN's kernel cache) are applied
by the commands that train or decode, once, from the config's `runtime` section
(`atento.cli.common.start_runtime`), never on import.

Exit statuses: 0 done, 2 bad input (`AtentoError`: one line `atento CMD: error: ...`), 130
interrupted, and 70 for anything unexpected (a bug): one line naming the command and the
exception, and where to report it; the traceback only under `--debug` or `ATENTO_DEBUG=1`.
Tests call `main(argv, guard=False)` to see such failures as the exceptions themselves.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from atento import __version__
from atento.cli.commands import COMMAND_MODULES
from atento.errors import AtentoError
from atento.options import OptionError, cli_spelling


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="atento", description="Train, decode and inspect attention-based sequence models."
    )
    parser.add_argument("--version", action="version", version=f"atento {__version__}")
    parser.add_argument(
        "--debug", action="store_true",
        help="print the traceback of an unexpected error (also: ATENTO_DEBUG=1)",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


INTERNAL_ERROR = 70  # EX_SOFTWARE: a bug, not the user's input


def main(argv: list[str] | None = None, *, guard: bool = True) -> int:
    """Run one command; its exit status. `guard=False` lets unexpected exceptions through
    (bad input still exits 2) instead of turning them into one line and status 70."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except OptionError as exc:  # a decoding option, spelled as on the command line
        print(f"atento {args.command}: error: {exc.spelled(cli_spelling)}", file=sys.stderr)
        return 2
    except AtentoError as exc:
        print(f"atento {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("atento: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if not guard:
            raise
        debug = args.debug or os.environ.get("ATENTO_DEBUG", "") not in ("", "0")
        if debug:
            traceback.print_exc()
        print(internal_error(args.command, exc, debug=debug), file=sys.stderr)
        return INTERNAL_ERROR


def internal_error(command: str, exc: BaseException, *, debug: bool = False) -> str:
    """The one line for an unexpected exception: the command, the exception's type and the
    first line of its message (shortened), and what to do."""
    lines = str(exc).strip().splitlines()
    message = str(AtentoError(lines[0] if lines else ""))  # control characters escaped
    if len(message) > 300:
        message = message[:299] + "\u2026"
    what = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    trace = "" if debug else "; --debug or ATENTO_DEBUG=1 shows the traceback"
    return (
        f"atento {command}: internal error: {what} (a bug: report it with the command line "
        f"at the atento issue tracker{trace})"
    )


if __name__ == "__main__":
    sys.exit(main())
