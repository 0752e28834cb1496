"""A store's life: found by its key, or built into a temporary folder and renamed into place.

    store = open_store(key, build, log=print)   # build(folder) -> the manifest's body

`build` writes the arrays and tokenizers into a fresh `.tmp-<key>@<host>@<pid>` folder beside the
stores; `manifest.json` is written last (fsynced, like every file) and the folder renamed to
`<key>`, so a killed prepare leaves nothing that looks finished (its temporary folder is
removed by the next prepare on that machine once its process is gone). Two processes that
build the same key at once (ranks on two nodes over a shared cache) both finish; the second
rename loses and its copy is removed. A full disk (ENOSPC) removes the temporary folder and
is one line.

Under torchrun the local rank 0 of each machine prepares; the other ranks wait for the
manifest to appear, polling the file system (no collective, so a long prepare does not run
into `runtime.collective_timeout`), then every rank maps the same files.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atento._version import __version__
from atento.data.store.arrays import TokenArrays
from atento.data.store.keys import FORMAT, digest_of, store_key, stores_root
from atento.data.tokenizers import Tokenizer, load_tokenizer
from atento.errors import AtentoError

MANIFEST = "manifest.json"
POLL_SECONDS = 0.2


@dataclass
class Store:
    """A finished store: its folder and manifest."""

    path: Path
    manifest: dict[str, Any]

    @property
    def key(self) -> str:
        return self.path.name

    def arrays(self, name: str) -> TokenArrays:
        """The memory-mapped array `name` (`src`, `tgt`, `train`, `valid`)."""
        return TokenArrays(self.path, name, self.manifest["arrays"][name])

    def tokenizers(self) -> dict[str, Tokenizer]:
        """The tokenizers by role (`src`/`tgt` sharing one for a joint vocabulary, `text`)."""
        loaded: dict[str, Tokenizer] = {}
        for name in set(self.manifest["tokenizers"].values()):
            loaded[name] = load_tokenizer(self.path, name)
        return {role: loaded[name] for role, name in self.manifest["tokenizers"].items()}

    @property
    def size(self) -> int:
        """Bytes on disk."""
        return folder_size(self.path)


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def is_preparer() -> bool:
    """Whether this process builds stores: not under torchrun, or its local rank 0."""
    return os.environ.get("LOCAL_RANK", "0") in ("", "0") or os.environ.get("WORLD_SIZE") == "1"


def read_store(path: Path, *, verify: bool = False) -> Store | None:
    """The finished store in `path`; None when it is missing or of another format version
    (to be rebuilt). A file whose size (or, with `verify`, SHA-256) differs from the manifest
    is a one-line error naming it."""
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise AtentoError(f"{manifest_path}: not a readable store manifest{_FIX}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return None
    for entry in manifest.get("arrays", {}).values():
        for name, info in entry["files"].items():
            _check_file(path / name, info, verify)
    return Store(path, manifest)


_FIX = " (`atento prepare --clean` removes the stores; the next run rebuilds)"


def _check_file(path: Path, info: dict[str, Any], verify: bool) -> None:
    try:
        size = path.stat().st_size
    except OSError:
        raise AtentoError(f"{path}: corpus store file missing{_FIX}") from None
    if size != info["size"]:
        raise AtentoError(
            f"{path}: corpus store file is {size} bytes, its manifest says {info['size']} "
            f"(truncated or altered){_FIX}"
        )
    if verify:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                digest.update(block)
        if digest.hexdigest() != info["sha256"]:
            raise AtentoError(f"{path}: corpus store file does not match its checksum{_FIX}")


def open_store(
    key: str, build: Callable[[Path], dict[str, Any]], *, log=print, verify: bool = False
) -> Store:
    """The store of `key`: found, waited for (another local rank prepares it) or built."""
    root = stores_root()
    final = root / key
    store = read_store(final, verify=verify)
    if store is not None:
        return store
    if final.exists():
        log(f"corpus store {final}: another format version, rebuilding it")
        shutil.rmtree(final, ignore_errors=True)
    if not is_preparer():
        return _wait_for(final, log)
    return _build(root, key, build, log)


def _wait_for(final: Path, log) -> Store:
    start = last = time.monotonic()
    while True:
        store = read_store(final)
        if store is not None:
            return store
        time.sleep(POLL_SECONDS)
        if time.monotonic() - last > 60:
            last = time.monotonic()
            log(f"waiting for local rank 0 to prepare {final} ({last - start:.0f} s)")


def _build(root: Path, key: str, build: Callable[[Path], dict[str, Any]], log) -> Store:
    final = root / key
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AtentoError(f"cannot create the corpus store folder {root}: {exc.strerror}") from None
    remove_stale(root)
    tmp = root / f".tmp-{key}@{socket.gethostname()}@{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        body = build(tmp)
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        manifest = {"format": FORMAT, "key": key, "atento": __version__, "created": created,
                    **body}  # fmt: skip
        _write_synced(tmp / MANIFEST, json.dumps(manifest, indent=1).encode() + b"\n")
        _fsync_dir(tmp)
        try:
            os.rename(tmp, final)
        except OSError as exc:  # another process finished the same key first: use its copy
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
        _fsync_dir(root)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno == errno.ENOSPC:
            raise AtentoError(
                f"no space left on the device while preparing the corpus store in {root}; "
                f"nothing was kept (free some space or point ATENTO_CACHE elsewhere)"
            ) from None
        raise AtentoError(
            f"cannot write the corpus store in {root}: {exc.strerror or exc}"
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    store = read_store(final)
    if store is None:
        raise AtentoError(f"{final}: the corpus store vanished after it was written")
    return store


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def remove_stale(root: Path) -> None:
    """Remove the temporary folders of prepares whose process is gone (killed)."""
    for tmp in root.glob(".tmp-*"):
        _, host, pid = tmp.name.rsplit("@", 2) if tmp.name.count("@") >= 2 else ("", "", "")
        if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stores() -> tuple[int, int]:
    """Remove every store (and leftover temporary folder); (stores removed, bytes freed)."""
    root = stores_root()
    if not root.is_dir():
        return 0, 0
    count = freed = 0
    for path in root.iterdir():
        size = folder_size(path) if path.is_dir() else path.stat().st_size
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        count += not path.name.startswith(".tmp-")
        freed += size
    return count, freed


def reusable(key: str, identity: list[dict[str, Any]], tokenizers: dict[str, Tokenizer]
             ) -> Store | None:  # fmt: skip
    """The store `key` (the one a run directory recorded) when it holds the same inputs and was
    encoded with the same `tokenizers`, else None (a store is then found or built by its own
    key)."""
    store = read_store(stores_root() / key)
    if store is None or store.manifest.get("inputs") != identity:
        return None
    return store if store.manifest.get("tokenizer_sha256") == digest_of(tokenizers) else None


def single_side_store(
    kind: str, identity: list[dict[str, Any]], settings: dict[str, Any],
    tokenizers: dict[str, Tokenizer] | None, build: Callable[[Path], dict[str, Any]], *,
    log, reuse: str | None, verify: bool,
) -> Store:  # fmt: skip
    """The store of a one-sided kind ("stream", "sentences"): the recorded store `reuse` when
    it still fits (`reusable`), else the one keyed by the inputs and either the encoding
    settings (tokenizer, vocab_size, tokenizer_sample, seed: the tokenizer is trained on the
    sample) or the given tokenizers' hash, found or made by `build(folder)` (its manifest
    gains the keyed settings)."""
    if reuse and tokenizers is not None:
        found = reusable(reuse, identity, tokenizers)
        if found is not None:
            return found
    if tokenizers is None:
        keyed = {k: settings[k] for k in ("tokenizer", "vocab_size", "tokenizer_sample", "seed")}
    else:
        keyed = {"tokenizer_sha256": digest_of(tokenizers)}

    def build_keyed(folder: Path) -> dict[str, Any]:
        return build(folder) | {"settings": keyed}

    return open_store(store_key(kind, identity, keyed), build_keyed, log=log, verify=verify)


RECORD = "store.json"


def record_store(run_dir: Path | None, store: Store) -> None:
    """Note in a run directory which store its training data came from (`--resume` maps the
    same one again)."""
    if run_dir is None:
        return
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    text = json.dumps({"key": store.key, "path": str(store.path)}, indent=1) + "\n"
    (Path(run_dir) / RECORD).write_text(text, encoding="utf-8")


def recorded_key(run_dir: Path | None) -> str | None:
    """The store key a run directory recorded, if any."""
    path = Path(run_dir) / RECORD if run_dir is not None else None
    if path is None or not path.is_file():
        return None
    try:
        key = json.loads(path.read_text(encoding="utf-8")).get("key")
    except (OSError, ValueError, AttributeError):
        return None
    return key if isinstance(key, str) and "/" not in key and not key.startswith(".") else None
