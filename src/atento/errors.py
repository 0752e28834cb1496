"""User-facing errors.

Anything raised as `AtentoError` is bad input (a missing file, a wrong config key, ...): the
command line prints its message on one line and exits with status 2, never a traceback.
"""


class AtentoError(Exception):
    """Bad input from the user; the message names the problem in one line (line breaks and
    other control characters that user input may bring into it are shown escaped)."""

    def __init__(self, message: object = "", *args: object) -> None:
        text = str(message)
        if not text.isprintable():
            text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
        super().__init__(text, *args)


def warn(message: str) -> None:
    """Print a one-line warning or note to stderr (a library-wide, plain channel)."""
    import sys

    print(f"atento: {message}" if not message.startswith("atento") else message, file=sys.stderr)
