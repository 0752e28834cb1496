"""Checkpoints as directories of plain data: loading one never runs pickle code.

A checkpoint (`checkpoint_best/`, `checkpoint_last/` in a run directory) holds
    model.safetensors        the weights to decode with (a state_dict; the average under EMA)
    train_model.safetensors  the raw weights when `model` holds an average (optional)
    training.pt              resuming state (optional): torch.save, read only weights_only=True
    {role}.json [+ .model]   one tokenizer per distinct object (`Tokenizer.save`)
    meta.json                format, atento version, step, progress, config, tokenizer roles,
                             tensor keys and aliases, and the size + sha256 of every other file
Tied weights (keys that are the same view of one storage) are stored once and mapped back on
loading; other tensors that share a storage are cloned. Loading checks every file it reads
against meta.json: a truncated or corrupted one is a one-line `AtentoError` naming it.

Commit protocol; a process killed at ANY point leaves the old or the new checkpoint:
1. write every file into `{name}.tmp-XXXX/`, fsync each, write meta.json LAST, fsync the
   directory (a directory without meta.json is never loaded);
2. rename `{name}/` (if any) to `{name}.old-XXXX/`;  3. rename the temp dir to `{name}/` and
   fsync the parent;  4. delete `{name}.old-*/`.
Killed between 2 and 3, there is no `{name}/`: `find_checkpoint` / `load_checkpoint` fall back
to the complete `.old` directory, and the next save removes it. Ordinary exceptions are cleaned
up on the spot; after a kill (or KeyboardInterrupt) `remove_stale` deletes the temp directories,
and the `.old` ones whose main directory exists.

Legacy `checkpoint_best.pt` / `checkpoint_last.pt` (format 1, one torch.save dict) load with
weights_only=True plus a numpy allowlist for the RNG state's key array.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import random
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from torch import Tensor

from atento import faults
from atento._version import __version__
from atento.data.tokenizers import Tokenizer, tokenizer_from_state
from atento.errors import AtentoError, warn

FORMAT = 2
BEST, LAST = "checkpoint_best", "checkpoint_last"
LEGACY_BEST, LEGACY_LAST = "checkpoint_best.pt", "checkpoint_last.pt"
META, TRAINING = "meta.json", "training.pt"
_WEIGHTS = ("model", "train_model")  # Checkpoint fields stored as {field}.safetensors
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")  # plain file names only, no paths
_STALE = re.compile(r"^(?P<main>checkpoint\w*)\.(?P<kind>tmp|old)-\w+$")  # a save cut short
_LEGACY_TMP = re.compile(r"^checkpoint_.*\.pt\..*\.tmp$")  # the previous release's temp files


@dataclass
class Checkpoint:
    """Plain data of one checkpoint; see the module docstring for what goes where."""

    config: dict[str, Any]
    tokenizers: dict[str, Tokenizer]
    model: dict[str, Tensor]
    step: int = 0
    progress: dict[str, Any] | None = None
    train_model: dict[str, Tensor] | None = None
    training: dict[str, Any] | None = None
    format: int = FORMAT
    path: Path | None = None


# ---------------------------------------------------------------- saving
def save_checkpoint(ckpt: Checkpoint, path: str | Path) -> None:
    """Write `ckpt` as the directory `path`, atomically (see the commit protocol above).

    `config` and `progress` must be JSON-able (tuples come back as lists); `training` may hold
    nested dicts / lists / tuples of tensors and plain scalars or strings, nothing else.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{secrets.token_hex(4)}")
    old = path.with_name(f"{path.name}.old-{secrets.token_hex(4)}")
    tmp.mkdir()  # not mkdtemp: its mode 0700 would outlive the rename
    try:
        _write_contents(ckpt, tmp)
        if path.exists():
            os.replace(path, old)
            faults.point("checkpoint-commit")
        try:
            os.replace(tmp, path)
        except Exception:
            if old.exists() and not path.exists():
                os.replace(old, path)
            raise
        _fsync_dir(path.parent)
    except Exception:  # an ordinary error: leave the old checkpoint as it was
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for leftover in _siblings(path, "old", complete=False):  # this one, and any cut short
        shutil.rmtree(leftover)


def _write_contents(ckpt: Checkpoint, directory: Path) -> None:
    """The checkpoint's files, each fsynced, with their sizes and SHA-256 in meta.json. Every
    file is written to disk by its own writer and hashed by reading it back: no file is held
    whole in memory. (The training state used to be pickled into a BytesIO and copied out by
    `getvalue()`: two copies of the optimizer's state at every save, ~3 GB for a GPT-2-sized
    model with Adam's moments, which glibc keeps in the heap under `runtime.malloc_tuning`.)"""
    files: dict[str, dict[str, Any]] = {}

    def record(name: str) -> None:
        sha256, size = hashlib.sha256(), 0
        with open(directory / name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                sha256.update(block)
                size += len(block)
            os.fsync(handle.fileno())
        files[name] = {"bytes": size, "sha256": sha256.hexdigest()}

    tensors = {}
    for i, field in enumerate(_WEIGHTS):
        if i:
            faults.point("checkpoint-write")
        state = getattr(ckpt, field)
        if state is not None:
            stored, aliases = _unshare(state)
            safetensors.torch.save_file(stored, str(directory / f"{field}.safetensors"))
            record(f"{field}.safetensors")
            tensors[field] = {"keys": list(state), "aliases": aliases}
    if ckpt.training is not None:
        with open(directory / TRAINING, "wb") as handle:
            torch.save(ckpt.training, handle)  # streamed: no BytesIO of the optimizer's state
        record(TRAINING)
    roles: dict[str, str] = {}
    names: dict[int, str] = {}  # id(tokenizer) -> file name, so shared tokenizers stay shared
    for role, tok in ckpt.tokenizers.items():
        if not _NAME.match(role) or role in ("meta", *_WEIGHTS):
            raise ValueError(f"tokenizer role {role!r} cannot be a file name in a checkpoint")
        if id(tok) not in names:
            names[id(tok)] = role
            tok.save(directory, role)
        roles[role] = names[id(tok)]
    for item in sorted(directory.iterdir()):  # the tokenizer files
        if item.name not in files:
            record(item.name)
    meta = {"format": FORMAT, "atento": __version__, "step": int(ckpt.step),
            "progress": ckpt.progress, "config": ckpt.config, "tokenizers": roles,
            "tensors": tensors, "files": files}  # fmt: skip
    try:
        text = json.dumps(meta, ensure_ascii=False, indent=1)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"checkpoint config and progress must be JSON-able: {exc}") from None
    with open(directory / META, "wb") as handle:  # last: the checkpoint is complete
        handle.write(text.encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())
    _fsync_dir(directory)


def _unshare(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, str]]:
    """(tensors safetensors accepts, {alias key: stored key}) for a state_dict."""
    stored: dict[str, Tensor] = {}
    aliases: dict[str, str] = {}
    views: dict[tuple, str] = {}
    storages: set[tuple] = set()
    for key, value in state.items():
        if not isinstance(value, Tensor):
            raise TypeError(f"state_dict entry {key!r} is a {type(value).__name__}, not a tensor")
        t = value.detach()
        storage = (t.device, t.untyped_storage().data_ptr())
        view = (*storage, t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)
        if view in views and t.numel() > 0:
            aliases[key] = views[view]  # a tied weight: the same tensor under another name
            continue
        views[view] = key
        if storage in storages or not t.is_contiguous():
            t = t.clone(memory_format=torch.contiguous_format)
        storages.add(storage)
        stored[key] = t.cpu()
    return stored, aliases


# ---------------------------------------------------------------- loading
def load_checkpoint(path: str | Path, *, training: bool = False) -> Checkpoint:
    """Read a checkpoint directory (or a legacy `.pt` file) without running any pickle code.

    With `training=False` the resuming state is not read: `train_model` and `training` are None.
    Tensors are on the CPU. A missing, incomplete, corrupted, newer or unsafe checkpoint is an
    `AtentoError` naming the file.
    """
    path = Path(path)
    if path.suffix == ".pt" or path.is_file():
        return _load_legacy(path, training=training)
    if not path.is_dir():
        fallback = _siblings(path, "old")
        if not fallback:
            raise AtentoError(f"checkpoint not found: {path}")
        path = fallback[-1]  # a save killed between its two renames
    meta = _read_meta(path)

    def read(name: str) -> bytes:
        return _read_verified(path, name, meta["files"])

    tokenizers, built = {}, {}
    for role, name in meta["tokenizers"].items():
        if name not in built:
            tok_state = json.loads(read(f"{name}.json"))
            if isinstance(tok_state.get("model"), str):  # SentencePiece: the model file's bytes
                tok_state["model_proto"] = read(tok_state.pop("model"))
            built[name] = tokenizer_from_state(tok_state)
        tokenizers[role] = built[name]
    weights = {
        field: _load_weights(read(f"{field}.safetensors"), meta["tensors"][field])
        for field in _WEIGHTS
        if field in meta["tensors"] and (field == "model" or training)
    }
    resume = None
    if training and TRAINING in meta["files"]:
        resume = _safe_torch_load(read(TRAINING), path / TRAINING)
    return Checkpoint(config=meta["config"], tokenizers=tokenizers, model=weights["model"],
                      step=int(meta.get("step", 0)), progress=meta.get("progress"), path=path,
                      train_model=weights.get("train_model"), training=resume)  # fmt: skip


def _read_meta(path: Path) -> dict[str, Any]:
    """The meta.json of checkpoint directory `path`, checked for completeness and format."""
    if not (path / META).is_file():
        raise AtentoError(f"{path} is not a complete checkpoint (no {META})")
    try:
        meta = json.loads((path / META).read_text(encoding="utf-8"))
    except ValueError:
        meta = None
    needed = {"format", "files", "tokenizers", "tensors", "config"}
    version = meta["format"] if isinstance(meta, dict) and needed <= meta.keys() else None
    if isinstance(version, int) and version > FORMAT:
        raise AtentoError(
            f"checkpoint {path} has format {version}, newer than this atento "
            f"({__version__}) reads (format {FORMAT}); upgrade atento"
        )
    if version != FORMAT:
        raise AtentoError(f"checkpoint file {path / META} is corrupted; not a usable checkpoint")
    return meta


def _read_verified(directory: Path, name: str, files: dict[str, Any]) -> bytes:
    """The bytes of `directory/name`, checked against the size and sha256 in meta.json."""
    path = directory / name
    hint = "the checkpoint cannot be used; restore it or use the other checkpoint"
    if not _NAME.match(name) or name not in files:
        raise AtentoError(f"checkpoint file {path} is not listed in {META}; {hint}")
    if not path.is_file():
        raise AtentoError(f"checkpoint file {path} is missing; {hint}")
    blob = path.read_bytes()
    expected = files[name]
    if len(blob) != expected.get("bytes"):
        raise AtentoError(
            f"checkpoint file {path} is truncated or corrupted "
            f"({len(blob)} bytes, expected {expected.get('bytes')}); {hint}"
        )
    if hashlib.sha256(blob).hexdigest() != expected.get("sha256"):
        raise AtentoError(f"checkpoint file {path} is corrupted (sha256 mismatch); {hint}")
    return blob


def _load_weights(blob: bytes, info: dict[str, Any]) -> dict[str, Tensor]:
    tensors = safetensors.torch.load(blob)
    for alias, key in info.get("aliases", {}).items():
        tensors[alias] = tensors[key]  # tied weights: one tensor under both names
    return {key: tensors[key] for key in info["keys"]}


def _safe_torch_load(source: bytes | Path, path: Path, allow: list | None = None) -> Any:
    """torch.load with weights_only=True (plus `allow`); an unsafe or broken file -> AtentoError."""
    try:
        with torch.serialization.safe_globals(allow or []):
            data = io.BytesIO(source) if isinstance(source, bytes) else source
            return torch.load(data, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).partition("WeightsUnpickler error:")[2].strip() or str(exc)
        reason = reason.splitlines()[0].split(". Please")[0] if reason else "unreadable"
        raise AtentoError(
            f"checkpoint file {path} refused: it is corrupted or holds objects that only "
            f"load by running code ({reason})"
        ) from None
    except Exception as exc:  # a truncated zip, a foreign file
        raise AtentoError(f"checkpoint file {path} is corrupted ({type(exc).__name__})") from None


def _numpy_allowlist() -> list:
    """What a pickled numpy RNG state needs: its uint32 key array, under numpy 1 or 2 names."""
    rebuild = np.ndarray(0).__reduce__()[0]  # numpy's multiarray._reconstruct
    names = ("numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct")
    return [np.ndarray, np.dtype, type(np.dtype(np.uint32)), *((rebuild, n) for n in names)]


def _load_legacy(path: Path, *, training: bool) -> Checkpoint:
    """A format-1 `.pt` file (one torch.save dict), read with weights_only=True."""
    if not path.is_file():
        raise AtentoError(f"checkpoint not found: {path}")
    raw = _safe_torch_load(path, path, allow=_numpy_allowlist())
    if not isinstance(raw, dict) or "model" not in raw or "config" not in raw:
        raise AtentoError(f"{path} is not an atento checkpoint")
    state = {k: raw[k] for k in ("optimizer", "scheduler", "ema_updates") if k in raw}
    if "rng" in raw:
        name, key, *rest = raw["rng"]["numpy"]  # the key array -> a tensor, as capture_rng
        key = torch.from_numpy(np.asarray(key).astype(np.int64))
        state["rng"] = {**raw["rng"], "numpy": (name, key, *rest)}
    tokenizers = {role: tokenizer_from_state(s) for role, s in raw["tokenizers"].items()}
    return Checkpoint(config=raw["config"], tokenizers=tokenizers, model=dict(raw["model"]),
                      step=int(raw.get("step", 0)), progress=raw.get("progress"), path=path,
                      train_model=raw.get("train_model") if training else None, format=1,
                      training=(state or None) if training else None)  # fmt: skip


# ---------------------------------------------------------------- run directories
def find_checkpoint(run_dir: str | Path, which: str = "best") -> Path:
    """The checkpoint to load from `run_dir`: "best" tries best then last, "last" the reverse;
    for each, a directory (or its `.old` fallback) before a legacy `.pt` file. A "best" that
    falls back to the last checkpoint says so on stderr (one line)."""
    run_dir = Path(run_dir)
    if which not in ("best", "last"):
        raise AtentoError(f"which checkpoint: expected 'best' or 'last', got {which!r}")
    if not run_dir.is_dir():
        raise AtentoError(f"run directory not found: {run_dir}")
    order = [(BEST, LEGACY_BEST), (LAST, LEGACY_LAST)]
    for name, legacy in order if which == "best" else order[::-1]:
        found = None
        if (run_dir / name).is_dir():
            found = run_dir / name
        elif fallback := _siblings(run_dir / name, "old"):
            found = fallback[-1]
        elif (run_dir / legacy).is_file():
            found = run_dir / legacy
        if found is not None:
            if which == "best" and name == LAST:
                warn(f"note: {run_dir} has no {BEST} (no validation yet?): using {found.name}")
            return found
    raise AtentoError(f"{run_dir} is not an atento run directory (no {BEST} or {LAST})")


def remove_stale(run_dir: str | Path) -> list[Path]:
    """Delete what saves cut short left in `run_dir`; returns the removed paths.

    Temp directories always go; an `.old` directory only when its main directory exists (else
    it is the checkpoint to load). Also removes the previous release's `checkpoint_*.pt.*.tmp`.
    """
    removed: list[Path] = []
    run_dir = Path(run_dir)
    for item in sorted(run_dir.iterdir()) if run_dir.is_dir() else []:
        match = _STALE.match(item.name)
        stale = match is not None and item.is_dir()
        if stale and match["kind"] == "old":
            stale = (item.parent / match["main"]).is_dir()
        if stale or (_LEGACY_TMP.match(item.name) and item.is_file()):
            shutil.rmtree(item) if item.is_dir() else item.unlink()
            removed.append(item)
    return removed


def _siblings(path: Path, kind: str, *, complete: bool = True) -> list[Path]:
    """`{path.name}.{kind}-*` directories beside `path`, oldest first; complete: with meta."""
    if not path.parent.is_dir():
        return []
    found = [p for p in path.parent.glob(f"{path.name}.{kind}-*") if p.is_dir()]
    if complete:
        found = [p for p in found if (p / META).is_file()]
    return sorted(found, key=lambda p: p.stat().st_mtime_ns)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- random number generators
def capture_rng() -> dict[str, Any]:
    """The states of torch (CPU, and every CUDA device once CUDA is in use), python `random` and
    numpy, as plain containers and tensors only, so `torch.load(weights_only=True)` reads them."""
    name, key, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": (str(name), torch.from_numpy(key.astype(np.int64)), int(pos), int(has_gauss),
                  float(cached)),
    }  # fmt: skip
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # never start CUDA for this
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Set the generators back to `capture_rng()`'s `state` (CUDA ones only when present)."""
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, key, pos, has_gauss, cached = state["numpy"]
    key = key.numpy() if isinstance(key, Tensor) else np.asarray(key)
    np.random.set_state((name, key.astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    if "cuda" in state and torch.cuda.is_available():
        for device, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, device)
