"""Multi30k (task 1, raw text): locate the `{split}.{lang}.gz` files, downloading once if asked.

    src_path, tgt_path = multi30k_files("train", "fr", "en", "../shared/data/multi30k")
    pairs = load_multi30k("val", "fr", "en", None)   # None / "": download into the cache once

With no directory the files come from the dataset's public GitHub repository into
`$ATENTO_CACHE/multi30k` (default `~/.cache/atento/multi30k`), written atomically (temporary
file, then rename), so an interrupted download never leaves a half file behind.
"""

from __future__ import annotations

import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from atento.data.parallel import read_parallel
from atento.errors import AtentoError

SPLITS = ("train", "val", "test_2016_flickr")
SPLIT_ALIASES = {"valid": "val", "test": "test_2016_flickr"}
LANGS = ("en", "fr", "de")
BASE_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw"
_GZIP_MAGIC = b"\x1f\x8b"


def cache_dir() -> Path:
    """Where downloaded Multi30k files live: `$ATENTO_CACHE/multi30k` or ~/.cache/atento/..."""
    root = os.environ.get("ATENTO_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "atento"
    return base / "multi30k"


def fetch_url(url: str, timeout: float = 60.0) -> bytes:
    """The body of `url` (replaced by a fake in tests, so they never touch the network)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def download_file(url: str, dest: Path) -> Path:
    """Fetch `url` into `dest` atomically: write a temporary file beside it, then rename."""
    try:
        data = fetch_url(url)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AtentoError(
            f"cannot download {url} ({reason}); set data.dir to a local Multi30k directory"
        ) from None
    if not data.startswith(_GZIP_MAGIC):
        raise AtentoError(f"download of {url} is not a gzip file; set data.dir to a local copy")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def _check(split: str, src_lang: str, tgt_lang: str) -> str:
    split = SPLIT_ALIASES.get(split, split)
    if split not in SPLITS:
        raise AtentoError(f"multi30k: unknown split {split!r} (use {', '.join(SPLITS)})")
    for lang in (src_lang, tgt_lang):
        if lang not in LANGS:
            raise AtentoError(f"multi30k: unknown language {lang!r} (use {', '.join(LANGS)})")
    if src_lang == tgt_lang:
        raise AtentoError(f"multi30k: source and target language are both {src_lang!r}")
    return split


def multi30k_files(
    split: str, src_lang: str, tgt_lang: str, directory: str | Path | None
) -> tuple[Path, Path]:
    """Paths of the (source, target) `{split}.{lang}.gz` files.

    `split` is train, val or test_2016_flickr (aliases: valid, test); languages are en, fr, de.
    With a directory the files must be there (AtentoError otherwise); with None or "" they are
    downloaded once into `cache_dir()` and reused afterwards.
    """
    split = _check(split, src_lang, tgt_lang)
    names = [f"{split}.{lang}.gz" for lang in (src_lang, tgt_lang)]
    if directory not in (None, ""):
        root = Path(directory).expanduser()
        if not root.is_dir():
            raise AtentoError(f"multi30k directory not found: {root}")
        paths = [root / n for n in names]
        for p in paths:
            if not p.is_file():
                raise AtentoError(f"file not found: {p}")
        return paths[0], paths[1]
    root = cache_dir()
    paths = [root / n for n in names]
    for name, p in zip(names, paths, strict=True):
        if not p.is_file():
            download_file(f"{BASE_URL}/{name}", p)
    return paths[0], paths[1]


def load_multi30k(
    split: str, src_lang: str, tgt_lang: str, directory: str | Path | None
) -> list[tuple[str, str]]:
    """(source, target) sentence pairs of one Multi30k split; see `multi30k_files`."""
    return read_parallel(*multi30k_files(split, src_lang, tgt_lang, directory))
