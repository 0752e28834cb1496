"""Frozen image features, computed once per image file and kept on disk.

A feature file is keyed by the image's resolved path, its size and modification time (ns) and
the encoder's name (which names its weights): editing or replacing an image, or changing the
encoder, makes a new key, so a stale feature is never read. Features are stored as fp16
region grids (P, C) = (49, 1280), one `.npy` file each (125 KB), written atomically.

    cache = FeatureCache(directory)
    feats, errors = cache.features(paths, progress=True)   # list of (49, 1280) fp16 tensors

Misses are extracted in batches through `ImageEncoder` with a progress bar; an unreadable
image does not stop the others: its error message is returned instead of its features.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from atento.captioning.images import IMAGE_SIZE, load_image
from atento.errors import AtentoError


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
    computes missing ones (default: the pretrained EfficientNet-Lite0, built on first use).
    `hits` and `misses` count lookups since construction.
    """

    def __init__(
        self, directory: str | Path | None = None, *, encoder: str | None = None,
        extract: Callable[[Tensor], Tensor] | None = None, batch_size: int = 32,
    ) -> None:  # fmt: skip
        self.directory = Path(directory) if directory else default_cache_dir()
        self._encoder_name = encoder
        self._extract = extract
        self.batch_size = batch_size
        self.hits = self.misses = 0

    @property
    def encoder(self) -> str:
        if self._encoder_name is None:
            from atento.captioning.encoder import ImageEncoder

            self._encoder_name = ImageEncoder.pretrained().name
        return self._encoder_name

    def _extractor(self) -> Callable[[Tensor], Tensor]:
        if self._extract is None:
            from atento.captioning.encoder import ImageEncoder, to_regions

            encoder = ImageEncoder.pretrained()
            self._extract = lambda images: to_regions(encoder(images))
        return self._extract

    def _file(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.npy"

    def features(
        self, paths: Sequence[str | Path], *, progress: bool = False
    ) -> tuple[list[Tensor | None], dict[int, str]]:
        """Features (P, C) fp16 of each image (None where it failed) and {index: error}."""
        out: list[Tensor | None] = [None] * len(paths)
        errors: dict[int, str] = {}
        todo: list[tuple[int, str]] = []  # (index, key) of misses
        for i, path in enumerate(paths):
            try:
                key = feature_key(path, self.encoder)
            except (OSError, ValueError):  # missing, or a name no file can have
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
