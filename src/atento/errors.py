"""User-facing errors.

Anything raised as `AtentoError` is bad input (a missing file, a wrong config key, ...): the
command line prints its message on one line and exits with status 2, never a traceback.
"""


class AtentoError(Exception):
    """Bad input from the user; the message names the problem in one line."""
