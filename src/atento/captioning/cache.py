"""Frozen image features, computed once per image file and kept on disk.

A feature file is keyed by the image's resolved path, its size and modification time (ns) and
the encoder's name (which names its weights): editing or replacing an image, or changing the
encoder, makes a new key, so a stale feature is never read. Features are stored as fp16
region grids (P, C) = (49, 1280), one `.npy` file each (125 KB), written atomically.

    cache = FeatureCache(directory)
    feats, errors = cache.features(paths, progress=True)   # list of (49, 1280) fp16 tensors

Misses are extracted in batches through `ImageEncoder` with a progress bar; an unreadable
image does not stop the others: its error message is returned instead of its features.

A training run reads a whole split through `packed`: the split's features copied once into one
contiguous file under `packs/` (keyed by all the images' keys in order: a stale one is never
read), from which a batch's rows are read on demand instead of holding every feature in the
process's memory (6,000 Flickr8k images: 753 MB).

    feats, kept, errors = cache.packed(paths)             # PackedFeatures: feats[rows] -> (B, P, C)

A run that fine-tunes the encoder's last N blocks caches the frozen part's output instead, the
activation at the cut (`FeatureCache(directory, finetune_blocks=N)`: (49, 192) for N = 1): the
same files and packs, keyed by the cut as well (through the encoder's name).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import sys
import tempfile
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from atento.captioning.images import IMAGE_SIZE, load_image
from atento.errors import AtentoError

PACK_FORMAT = "atento-feature-pack-1"  # part of every pack's key: a new format, new files
_MAGIC = b"ATNTPAK1"
_TRAILER = struct.Struct("<Q8s")  # the JSON trailer's length, the magic bytes


def default_cache_dir() -> Path:
    """$ATENTO_CACHE/features, else ~/.cache/atento/features."""
    root = os.environ.get("ATENTO_CACHE") or Path.home() / ".cache" / "atento"
    return Path(root) / "features"


def feature_key(path: str | Path, encoder: str, size: int = IMAGE_SIZE) -> str:
    """The cache key of an image file: resolved path, size, mtime (ns), encoder, input size."""
    path = Path(path).resolve()
    st = path.stat()
    text = f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{encoder}\0{size}"
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


class FeatureCache:
    """Region features (P, C) fp16 per image file, on disk under `directory`.

    `encoder` is the name that keys the features; `extract(images (B, 3, S, S)) -> (B, P, C)`
    computes missing ones (default: the pretrained EfficientNet-Lite0, built on first use, up
    to the cut before its last `finetune_blocks` blocks: 0 = the whole net, the final map).
    `hits` and `misses` count lookups since construction.
    """

    def __init__(
        self, directory: str | Path | None = None, *, encoder: str | None = None,
        extract: Callable[[Tensor], Tensor] | None = None, batch_size: int = 32,
        finetune_blocks: int = 0,
    ) -> None:  # fmt: skip
        from atento.captioning.encoder import check_finetune_blocks

        self.directory = Path(directory) if directory else default_cache_dir()
        self._encoder_name = encoder
        self._extract = extract
        self.batch_size = batch_size
        self.finetune_blocks = check_finetune_blocks(finetune_blocks)
        self.hits = self.misses = 0

    @property
    def encoder(self) -> str:
        if self._encoder_name is None:
            from atento.captioning.encoder import pretrained_name

            self._encoder_name = pretrained_name(self.finetune_blocks)
        return self._encoder_name

    def _extractor(self) -> Callable[[Tensor], Tensor]:
        if self._extract is None:
            from atento.captioning.encoder import ImageEncoder, to_regions

            encoder, n = ImageEncoder.pretrained(), self.finetune_blocks
            self._extract = lambda images: to_regions(encoder.frozen_part(images, n))
        return self._extract

    def _file(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.npy"

    def _key(self, path: str | Path) -> str | None:
        try:
            return feature_key(path, self.encoder)
        except (OSError, ValueError):  # missing, or a name no file can have
            return None

    def features(
        self, paths: Sequence[str | Path], *, progress: bool = False
    ) -> tuple[list[Tensor | None], dict[int, str]]:
        """Features (P, C) fp16 of each image (None where it failed) and {index: error}."""
        return self._features(paths, [self._key(p) for p in paths], progress)

    def _features(self, paths, keys, progress: bool) -> tuple[list[Tensor | None], dict]:
        out: list[Tensor | None] = [None] * len(paths)
        errors: dict[int, str] = {}
        todo: list[tuple[int, str]] = []  # (index, key) of misses
        for i, (path, key) in enumerate(zip(paths, keys, strict=True)):
            if key is None:
                errors[i] = f"image not found: {path}"
                continue
            cached = self._read(key)
            if cached is None:
                todo.append((i, key))
                self.misses += 1
            else:
                out[i] = cached
                self.hits += 1
        if todo:
            self._fill(paths, todo, out, errors, progress)
        return out, errors

    def packed(
        self, paths: Sequence[str | Path], *, progress: bool = False, strict: bool = False,
        chunk: int = 512,
    ) -> tuple[PackedFeatures | None, list[int], dict[int, str]]:  # fmt: skip
        """The features of `paths` as one contiguous file (`PackedFeatures`, None when no image
        could be read), the indices of the images its rows belong to and {index: error}.

        The file is keyed by every image's cache key (so by each file's path, size and mtime
        and by the encoder) and by their order, and written atomically: a changed image or
        list makes a new file, a stale one is never read. It is built once from the per-image
        features, `chunk` images at a time. Only a list whose images all read is kept on disk;
        otherwise the file is this process's alone and removed when closed (an unreadable
        image is tried again next time, as with `features`). `strict`: the first error (of the
        first `chunk` with one) is raised as an AtentoError."""
        keys = [self._key(p) for p in paths]
        file = self._pack_file(paths, keys)
        if file.is_file():
            try:
                return PackedFeatures.open(file)
            except (OSError, ValueError):  # damaged: built again
                pass
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=file.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                kept, errors = self._write_pack(handle, paths, keys, progress, strict, chunk)
            if not kept:
                Path(tmp).unlink()
                return None, kept, errors
            if errors:  # not kept on disk: this run's own copy
                return PackedFeatures.open(tmp, temporary=True)
            os.replace(tmp, file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return PackedFeatures.open(file)

    def _pack_file(self, paths: Sequence[str | Path], keys: list[str | None]) -> Path:
        """The pack of these images in this order: named by the digest of the format, the
        encoder and every image's cache key (its path where it has none)."""
        names = (k or f"missing:{p}" for k, p in zip(keys, paths, strict=True))
        text = "\0".join([PACK_FORMAT, self.encoder, *names])
        digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()
        return self.directory / "packs" / f"{digest}.pack"

    def _write_pack(
        self, handle: BinaryIO, paths: Sequence[str | Path], keys: list[str | None], progress: bool,
        strict: bool, chunk: int,
    ) -> tuple[list[int], dict[int, str]]:  # fmt: skip
        """Write the features of `paths` into `handle` as fp16 rows, `chunk` images at a time,
        then the trailer (shape, the images the rows belong to, the errors); returns those
        indices and {index: error} (`strict`: raises the first error of a chunk)."""
        kept: list[int] = []
        errors: dict[int, str] = {}
        shape: tuple[int, ...] | None = None
        for start in range(0, len(paths), chunk):
            feats, errs = self._features(paths[start : start + chunk],
                                         keys[start : start + chunk], progress)  # fmt: skip
            if errs and strict:
                raise AtentoError(next(iter(errs.values())))
            errors.update({start + i: e for i, e in errs.items()})
            for i, f in enumerate(feats):
                if f is None:
                    continue
                if shape is None:
                    shape = tuple(f.shape)
                elif tuple(f.shape) != shape:
                    raise AtentoError(f"features of {paths[start + i]}: shape "
                                      f"{tuple(f.shape)}, not {shape}")  # fmt: skip
                handle.write(np.ascontiguousarray(f.to(torch.float16).numpy()).data)
                kept.append(start + i)
        meta = {"format": PACK_FORMAT, "byteorder": sys.byteorder,
                "shape": [len(kept), *(shape or (0, 0))], "kept": kept,
                "errors": {str(i): e for i, e in errors.items()}}  # fmt: skip
        trailer = json.dumps(meta).encode("utf-8")
        handle.write(trailer + _TRAILER.pack(len(trailer), _MAGIC))
        return kept, errors

    def _read(self, key: str) -> Tensor | None:
        file = self._file(key)
        if not file.is_file():
            return None
        try:
            return torch.from_numpy(np.load(file, allow_pickle=False))
        except (OSError, ValueError):  # a damaged cache file: computed again
            return None

    def _fill(self, paths, todo, out, errors, progress: bool) -> None:
        extract = self._extractor()
        bar = tqdm(total=len(todo), desc="extracting image features", unit="img",
                   disable=not progress, dynamic_ncols=True)  # fmt: skip
        try:
            for start in range(0, len(todo), self.batch_size):
                chunk, images = [], []
                for i, key in todo[start : start + self.batch_size]:
                    try:
                        images.append(load_image(paths[i]))
                        chunk.append((i, key))
                    except AtentoError as exc:
                        errors[i] = str(exc)
                if images:
                    with torch.no_grad():
                        feats = extract(torch.stack(images)).to(torch.float16).cpu()
                    for (i, key), f in zip(chunk, feats, strict=True):
                        self._write(key, f)
                        out[i] = f
                bar.update(len(todo[start : start + self.batch_size]))
        finally:
            bar.close()

    def _write(self, key: str, feats: Tensor) -> None:
        """Atomically: a temporary file in the same folder, then rename."""
        file = self._file(key)
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=file.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.save(handle, feats.numpy(), allow_pickle=False)
            os.replace(tmp, file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class PackedFeatures:
    """Region features (N, P, C) fp16 of N images in one file, read on demand.

    The file holds the rows one after the other (C order, fp16 in the machine's byte order),
    then a JSON trailer (shape, the images' indices, their errors), its length and a magic
    number. Rows are read with `pread` into a fresh tensor, consecutive rows in one call: the
    file's pages live in the kernel's page cache (shared between processes, reclaimable
    under memory pressure, read again from disk if dropped), not in this process's resident
    set, so a run's RSS holds only the batches in use. Thread-safe (no file position).

        feats[i] -> (P, C)      feats[rows] -> (len(rows), P, C)   (rows: ints or a 1-d tensor)
        list(feats)              every row, read a block at a time
    """

    def __init__(self, file: str | Path, shape: Sequence[int], *, temporary: bool = False):
        self.file = Path(file)
        self.shape = tuple(int(n) for n in shape)
        self.row_bytes = math.prod(self.shape[1:]) * 2
        fd = os.open(self.file, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        self._fd = fd
        remove = None
        if temporary:  # this process's own file: gone once closed (at once where POSIX allows)
            if os.name == "posix":
                self.file.unlink()
            else:
                remove = self.file
        self._finalizer = weakref.finalize(self, _close, fd, remove)

    @classmethod
    def open(
        cls, file: str | Path, *, temporary: bool = False
    ) -> tuple[PackedFeatures, list[int], dict[int, str]]:
        """(features, indices of the images the rows belong to, {image index: error}); a
        ValueError when the file is not a whole feature pack."""
        with open(file, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size < _TRAILER.size:
                raise ValueError(f"{file}: not a feature pack")
            handle.seek(size - _TRAILER.size)
            length, magic = _TRAILER.unpack(handle.read(_TRAILER.size))
            if magic != _MAGIC or length > size - _TRAILER.size:
                raise ValueError(f"{file}: not a feature pack")
            handle.seek(size - _TRAILER.size - length)
            try:
                meta = json.loads(handle.read(length))
                shape, kept = [int(n) for n in meta["shape"]], [int(i) for i in meta["kept"]]
                errors = {int(i): str(e) for i, e in meta["errors"].items()}
                ok = meta["format"] == PACK_FORMAT and meta["byteorder"] == sys.byteorder
            except (KeyError, TypeError, AttributeError) as exc:
                raise ValueError(f"{file}: not a feature pack ({exc})") from None
        if not ok or len(shape) != 3 or len(kept) != shape[0]:
            raise ValueError(f"{file}: another format")
        if math.prod(shape) * 2 != size - _TRAILER.size - length:
            raise ValueError(f"{file}: truncated")
        return cls(file, shape, temporary=temporary), kept, errors

    def __len__(self) -> int:
        return self.shape[0]

    def close(self) -> None:
        self._finalizer()

    def rows(self, index: Sequence[int] | Tensor) -> Tensor:
        """Rows `index` (repeats and any order allowed) as one (len(index), P, C) tensor."""
        n = len(self)
        index = index.tolist() if isinstance(index, Tensor) else [int(i) for i in index]
        for i in index:
            if not -n <= i < n:
                raise IndexError(f"row {i} of {n}")
        index = [i % n for i in index]
        out = torch.empty((len(index), *self.shape[1:]), dtype=torch.float16)
        buffer = memoryview(out.numpy()).cast("B")
        size, j = self.row_bytes, 0
        while j < len(index):
            k = j + 1  # a run of consecutive rows is one read
            while k < len(index) and index[k] == index[k - 1] + 1:
                k += 1
            self._read_into(buffer[j * size : k * size], index[j] * size)
            j = k
        return out

    def _read_into(self, buffer: memoryview, offset: int) -> None:
        done = 0
        while done < len(buffer):
            if hasattr(os, "preadv"):
                got = os.preadv(self._fd, [buffer[done:]], offset + done)
            else:
                data = os.pread(self._fd, len(buffer) - done, offset + done)
                buffer[done : done + len(data)] = data
                got = len(data)
            if got == 0:
                raise OSError(f"{self.file}: truncated feature pack")
            done += got

    def __getitem__(self, key: int | slice | Sequence[int] | Tensor) -> Tensor:
        if isinstance(key, slice):
            return self.rows(range(*key.indices(len(self))))
        if isinstance(key, int) or (isinstance(key, Tensor) and key.dim() == 0):
            return self.rows([int(key)])[0]
        return self.rows(key)

    def __iter__(self) -> Iterator[Tensor]:
        block = 256
        for start in range(0, len(self), block):
            yield from self.rows(range(start, min(start + block, len(self))))


def _close(fd: int, remove: Path | None) -> None:
    os.close(fd)
    if remove is not None:
        remove.unlink(missing_ok=True)
