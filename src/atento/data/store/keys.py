"""Where stores live and what names them: the cache root, the inputs' identity and the key.

A store's key is the SHA-256 of everything that decides its bytes: the format version, the
kind of store, each input file's identity (resolved path, size, mtime and a hash of its first
and last MiB: an edited file is a new key without reading it all), and every setting that
changes the encoding (tokenizer kind, vocabulary size, joint vocabulary, sample size, seed,
max_len, ...), or, where the tokenizer already exists (a resumed run, `model.init_from`), the
hash of that tokenizer instead of the settings that would have built it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from atento.errors import AtentoError

FORMAT = 1  # the store layout; another version is rebuilt
MIB = 1 << 20


def cache_root() -> Path:
    """`$ATENTO_CACHE` (default ~/.cache/atento): the root of atento's caches."""
    root = os.environ.get("ATENTO_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "atento"


def stores_root() -> Path:
    """The folder that holds the corpus stores: `$ATENTO_CACHE/stores`."""
    return cache_root() / "stores"


def file_identity(path: str | Path) -> dict[str, Any]:
    """What names a file's content without reading it all: resolved path, size, mtime (ns) and
    the SHA-256 of its first and last MiB."""
    path = Path(path)
    try:
        st = path.stat()
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            digest.update(f.read(MIB))
            if st.st_size > MIB:
                f.seek(max(st.st_size - MIB, MIB))
                digest.update(f.read(MIB))
    except FileNotFoundError:
        raise AtentoError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise AtentoError(f"{path} is a folder, not a file") from None
    except OSError as exc:
        raise AtentoError(f"cannot read {path}: {exc.strerror or exc}") from None
    return {
        "path": str(path.resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ends_sha256": digest.hexdigest(),
    }


def tokenizer_digest(states: Mapping[str, Mapping[str, Any]]) -> str:
    """SHA-256 of tokenizers' `state()`s by role (bytes, e.g. a SentencePiece model, hashed
    as they are)."""
    digest = hashlib.sha256()
    for role in sorted(states):
        digest.update(role.encode() + b"\0")
        for name in sorted(states[role]):
            value = states[role][name]
            raw = (value if isinstance(value, bytes)
                   else json.dumps(value, sort_keys=True, default=_plain).encode())  # fmt: skip
            digest.update(name.encode() + b"\0" + raw + b"\0")
    return digest.hexdigest()


def digest_of(tokenizers: Mapping[str, Any]) -> str:
    """`tokenizer_digest` of tokenizers by role."""
    return tokenizer_digest({role: tok.state() for role, tok in tokenizers.items()})


def _plain(value: Any) -> str:
    """JSON for what json cannot write itself (bytes nested in a state)."""
    return value.hex() if isinstance(value, bytes) else repr(value)


def store_key(kind: str, inputs: Iterable[Mapping[str, Any]], settings: Mapping[str, Any]) -> str:
    """The key of a store: 24 hex digits of the SHA-256 of its format, kind, inputs and
    settings (canonical JSON)."""
    text = json.dumps(
        {"format": FORMAT, "kind": kind, "inputs": list(inputs), "settings": dict(settings)},
        sort_keys=True,
    )
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:24]}"
