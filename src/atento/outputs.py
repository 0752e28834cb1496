"""Output paths, one policy for every command that writes (files, figures, folders).

    path = output_path(args.out, option="--out")               # a file: its folder is made
    folder = output_path(args.out, kind="dir", option="--out")  # a folder: made
    write_text(path, "text\n")

Called before the work is done, so that a path that cannot be written is a one-line
`AtentoError` at once, not after minutes of decoding: missing parent folders are created; a
folder given where a file is needed, a file where a folder is needed (also as a parent: `a.txt/
out.png`) and a location that cannot be written (a read-only folder) are refused, naming the
option and the path. Writing itself turns an `OSError` (a full disk, ...) into one line too.
"""

from __future__ import annotations

import os
from pathlib import Path

from atento.errors import AtentoError

KINDS = ("file", "dir")


def output_path(path: str | Path, *, kind: str = "file", option: str | None = None) -> Path:
    """`path` ready to be written as a `kind` ("file" or "dir"): its folder (for "dir": the
    folder itself) exists afterwards; AtentoError when it cannot be (module doc)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    path = Path(path)
    where = f"{option} {path}" if option else str(path)
    if kind == "file" and path.is_dir():
        raise AtentoError(f"{where}: is a folder; a file name is needed here")
    if kind == "dir" and path.exists() and not path.is_dir():
        raise AtentoError(f"{where}: is a file; a folder is needed here")
    folder = path if kind == "dir" else path.parent
    _make_folder(folder, where)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise AtentoError(f"{where}: cannot write in {folder} (permission denied)")
    if kind == "file" and path.exists() and not os.access(path, os.W_OK):
        raise AtentoError(f"{where}: cannot overwrite it (permission denied)")
    return path


def _make_folder(folder: Path, where: str) -> None:
    """Create `folder` and its missing parents; a file on the way is named in the error."""
    if folder.is_dir():
        return
    for ancestor in (folder, *folder.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                raise AtentoError(f"{where}: {ancestor} is a file, not a folder")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AtentoError(f"{where}: cannot create {folder} ({exc.strerror or exc})") from None


def write_text(path: str | Path, text: str, *, option: str | None = None) -> Path:
    """Write `text` (UTF-8) to the file `path` under `output_path`'s checks; returns it."""
    path = output_path(path, option=option)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        where = f"{option} {path}" if option else str(path)
        raise AtentoError(f"{where}: cannot write ({exc.strerror or exc})") from None
    return path
