"""Line-oriented input under one set of policies, shared by every command that reads lines.

Every such command promises one output line per input line, in order. What happens to an
input line that cannot be used as it is, is a policy the user picks, never a silent skip:

    --on-empty     emit-empty | error     an empty line gives an empty output line (default)
    --on-bad-utf8  error | replace        invalid UTF-8: exit 2 naming file, line and byte
                                          offset, before any output (default), or read it
                                          with U+FFFD in place of the bad bytes
    --on-too-long  error | truncate       longer than the model can take (learned positions):
                                          exit 2 naming file and line (default), or keep the
                                          first pieces that fit

    policy = LinePolicy(on_empty="error")
    lines = read_text_lines("input.txt", policy)          # or None: stdin
    ids = fit_lengths(tok.encode_batch(lines), limit, policy, name="input.txt")

Lines are split on "\\n" only (U+2028 and friends may occur inside a sentence); a UTF-8 byte
order mark at the start is dropped, and trailing whitespace (CRLF's "\\r" included) stripped.
"""

from __future__ import annotations

import gzip
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from atento.errors import AtentoError, warn

ON_EMPTY = ("emit-empty", "error")
ON_BAD_UTF8 = ("error", "replace")
ON_TOO_LONG = ("error", "truncate")
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class LinePolicy:
    """What to do with empty, badly encoded and over-long input lines (module doc)."""

    on_empty: str = "emit-empty"
    on_bad_utf8: str = "error"
    on_too_long: str = "error"

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("on_empty", self.on_empty, ON_EMPTY),
            ("on_bad_utf8", self.on_bad_utf8, ON_BAD_UTF8),
            ("on_too_long", self.on_too_long, ON_TOO_LONG),
        ):
            if value not in allowed:
                raise AtentoError(f"--{name.replace('_', '-')}: {value!r} is not one of {allowed}")

    @classmethod
    def of(cls, options: object) -> LinePolicy:
        """The policy of an options object's `on_*` fields (defaults where it has none)."""
        return cls(**{f: getattr(options, f) for f in ("on_empty", "on_bad_utf8", "on_too_long")
                      if getattr(options, f, None) is not None})  # fmt: skip


DEFAULT_POLICY = LinePolicy()


def readable_path(path: str | Path) -> Path:
    """`path` as a Path when it names something to read: a file, or a pipe, FIFO or device
    (`<(head -2 file)`'s /dev/fd/63, /dev/stdin); one-line errors for a missing path and a
    folder. Whether it can be read is found out by reading it."""
    path = Path(path)
    if path.is_dir():
        raise AtentoError(f"{path} is a folder, not a file")
    if not path.exists():
        raise AtentoError(f"file not found: {path}")
    return path


def text_file_bytes(path: str | Path, *, empty: str = "empty file") -> bytes:
    """A whole text file's bytes; one-line errors for a missing, empty (`empty` says so) or
    binary file (a NUL byte, naming its line)."""
    path = readable_path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AtentoError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not data.strip():
        raise AtentoError(f"{path}: {empty}")
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise AtentoError(f"{path}:{line}: NUL byte: a binary file, not text")
    return data


def _read_bytes(path: str | Path | None) -> bytes:
    if path is None:  # a text stream without a byte buffer (tests, notebooks): its text
        buffer = getattr(sys.stdin, "buffer", None)
        return buffer.read() if buffer is not None else sys.stdin.read().encode()
    path = readable_path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise AtentoError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


def _decode_line(chunk: bytes, name: str, number: int, offset: int, policy: LinePolicy):
    """One line's text under `policy` (trailing whitespace stripped) and whether bad bytes
    were replaced; `offset` is the line's byte offset in the file, for the error."""
    replaced = False
    try:
        text = chunk.decode("utf-8")
    except UnicodeDecodeError as exc:
        if policy.on_bad_utf8 == "error":
            raise AtentoError(
                f"{name}:{number}: invalid UTF-8 at byte offset {offset + exc.start} "
                f"(--on-bad-utf8 replace reads it with U+FFFD)"
            ) from None
        text, replaced = chunk.decode("utf-8", errors="replace"), True
    text = text.rstrip()
    if not text and policy.on_empty == "error":
        raise AtentoError(
            f"{name}:{number}: empty line (--on-empty emit-empty gives it an empty output line)"
        )
    return text, replaced


def decode_lines(data: bytes, name: str, policy: LinePolicy = DEFAULT_POLICY) -> list[str]:
    """`data` split into lines and decoded under `policy` (`name` for error messages)."""
    offset = 0
    if data.startswith(BOM):
        data, offset = data[len(BOM) :], len(BOM)
    raw = data.split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()
    lines: list[str] = []
    replaced = 0
    for number, chunk in enumerate(raw, start=1):
        text, bad = _decode_line(chunk, name, number, offset, policy)
        replaced += bad
        lines.append(text)
        offset += len(chunk) + 1
    if replaced:
        warn(f"{name}: {replaced} line(s) with invalid UTF-8 read with U+FFFD (--on-bad-utf8)")
    return lines


def stream_lines(
    path: str | Path, policy: LinePolicy = DEFAULT_POLICY, *, raw: bool = False
) -> Iterator[str]:
    """The lines of a text file (`.gz` = gzip) one at a time, as `read_text_lines` reads them,
    without holding the file in memory. `raw=True` keeps each line as it is, its "\\n"
    included (text for a language model), checking only its UTF-8."""
    path = readable_path(path)
    name, offset, replaced = str(path), 0, 0
    try:
        f = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise AtentoError(f"cannot read {path}: {exc.strerror or exc}") from None
    with f:
        try:
            for number, chunk in enumerate(f, start=1):
                if number == 1 and chunk.startswith(BOM):
                    chunk, offset = chunk[len(BOM) :], len(BOM)
                size = len(chunk)
                if raw:
                    yield _decode_raw(chunk, name, number, offset, policy)
                else:
                    text, bad = _decode_line(chunk.rstrip(b"\n"), name, number, offset, policy)
                    replaced += bad
                    yield text
                offset += size
        except (OSError, EOFError) as exc:  # a truncated gzip stream, a failing disk
            reason = getattr(exc, "strerror", None) or exc
            raise AtentoError(f"cannot read {path}: {reason}") from None
    if replaced:
        warn(f"{name}: {replaced} line(s) with invalid UTF-8 read with U+FFFD (--on-bad-utf8)")


def _decode_raw(chunk: bytes, name: str, number: int, offset: int, policy: LinePolicy) -> str:
    try:
        return chunk.decode("utf-8")
    except UnicodeDecodeError as exc:
        if policy.on_bad_utf8 == "error":
            raise AtentoError(
                f"{name}:{number}: invalid UTF-8 at byte offset {offset + exc.start}"
            ) from None
        return chunk.decode("utf-8", errors="replace")


def read_text_lines(path: str | Path | None, policy: LinePolicy = DEFAULT_POLICY) -> list[str]:
    """The lines of a text file (`.gz` = gzip) or, for None, of stdin, under `policy`."""
    return decode_lines(_read_bytes(path), str(path) if path is not None else "stdin", policy)


def fit_lengths(
    ids: Sequence[list[int]],
    limit: int | None,
    policy: LinePolicy = DEFAULT_POLICY,
    *,
    name: str,
    numbers: Sequence[int] | None = None,
    what: str = "pieces",
) -> list[list[int]]:
    """Encoded lines checked against the model's `limit` (None = any length): an over-long
    line is an error naming `name` and its line number, or is cut to `limit` under
    `--on-too-long truncate` (with a count on stderr). `numbers` are the lines' numbers in
    the file (default 1, 2, ...) when some lines were set aside before encoding."""
    if limit is None:
        return list(ids)
    out: list[list[int]] = []
    cut = 0
    numbers = range(1, len(ids) + 1) if numbers is None else numbers
    for number, seq in zip(numbers, ids, strict=True):
        if len(seq) > limit:
            if policy.on_too_long == "error":
                raise AtentoError(
                    f"{name}:{number}: {len(seq)} {what}, longer than the model takes ({limit}; "
                    f"--on-too-long truncate keeps the first {limit})"
                )
            seq = seq[:limit]
            cut += 1
        out.append(list(seq))
    if cut:
        warn(f"{name}: {cut} line(s) cut to the model's {limit} {what} (--on-too-long truncate)")
    return out
