"""Flat token arrays on disk: written in appended chunks, read back memory-mapped.

A store's array `name` is up to three raw little-endian files:

    {name}.tok   every token of every row, one after another (uint16 or uint32)
    {name}.len   each row's length (int32)                      (rows only, not a stream)
    {name}.off   int64 offsets, N + 1 of them: row i is tok[off[i]:off[i + 1]]

Read back through `np.memmap`, the pages stay in the page cache, shared by every process
that maps them (every rank of a torchrun job), and never count as the process's own memory
until touched.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from atento import faults

LENGTH_DTYPE = np.dtype("<i4")
OFFSET_DTYPE = np.dtype("<i8")
_CHUNK = 1 << 22  # rows per pass when computing offsets


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 where every id fits, else uint32."""
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<u4")


class _HashedFile:
    """An append-only file that hashes what it writes and fsyncs when closed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = open(path, "wb")  # noqa: SIM115
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview) -> None:
        faults.disk_full("store-write")
        data = memoryview(data).cast("B")  # bytes, whatever the items
        self.file.write(data)
        self.sha.update(data)
        self.size += len(data)

    def close(self) -> dict[str, Any]:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        return {"size": self.size, "sha256": self.sha.hexdigest()}


class ArrayWriter:
    """Appends rows (or, with `rows=False`, a plain stream) of token ids to `directory`."""

    def __init__(self, directory: Path, name: str, dtype: np.dtype, *, rows: bool) -> None:
        self.directory, self.name, self.dtype, self.rows = Path(directory), name, dtype, rows
        self.tokens = _HashedFile(self.directory / f"{name}.tok")
        self.lengths = _HashedFile(self.directory / f"{name}.len") if rows else None
        self.n_rows = self.n_tokens = 0

    def append(self, tokens: np.ndarray, lengths: np.ndarray | None = None) -> None:
        """Add `tokens` (1-D) and, for rows, the `lengths` that split them."""
        self.tokens.write(np.ascontiguousarray(tokens, dtype=self.dtype).data)
        self.n_tokens += len(tokens)
        if self.lengths is not None:
            assert lengths is not None and int(lengths.sum()) == len(tokens)
            self.lengths.write(np.ascontiguousarray(lengths, dtype=LENGTH_DTYPE).data)
            self.n_rows += len(lengths)

    def close(self) -> dict[str, Any]:
        """Finish the files (offsets computed from the lengths); their manifest entry."""
        files = {f"{self.name}.tok": self.tokens.close()}
        if self.lengths is not None:
            files[f"{self.name}.len"] = self.lengths.close()
            files[f"{self.name}.off"] = self._write_offsets()
        return {"dtype": self.dtype.str, "rows": self.n_rows, "tokens": self.n_tokens,
                "files": files}  # fmt: skip

    def _write_offsets(self) -> dict[str, Any]:
        out = _HashedFile(self.directory / f"{self.name}.off")
        out.write(np.zeros(1, OFFSET_DTYPE).data)
        lengths = _map(self.directory / f"{self.name}.len", LENGTH_DTYPE, self.n_rows)
        total = 0
        for start in range(0, self.n_rows, _CHUNK):
            offsets = np.cumsum(lengths[start : start + _CHUNK], dtype=OFFSET_DTYPE) + total
            out.write(offsets.data)
            total = int(offsets[-1])
        return out.close()


def _map(path: Path, dtype: np.dtype, count: int) -> np.ndarray:
    """`count` items of `dtype` in `path`, memory-mapped read-only (an empty array for 0)."""
    if count == 0:
        return np.zeros(0, dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(count,))


class TokenArrays:
    """An array written by `ArrayWriter`, memory-mapped: `tokens`, and for rows `lengths`
    and `offsets`; `row(i)` is a view of row i's ids."""

    def __init__(self, directory: Path, name: str, entry: dict[str, Any]) -> None:
        directory = Path(directory)
        self.dtype = np.dtype(entry["dtype"])
        self.n_rows, self.n_tokens = int(entry["rows"]), int(entry["tokens"])
        self.tokens = _map(directory / f"{name}.tok", self.dtype, self.n_tokens)
        self.lengths = self.offsets = None
        if f"{name}.len" in entry["files"]:
            self.lengths = _map(directory / f"{name}.len", LENGTH_DTYPE, self.n_rows)
            self.offsets = _map(directory / f"{name}.off", OFFSET_DTYPE, self.n_rows + 1)

    def __len__(self) -> int:
        return self.n_rows if self.lengths is not None else self.n_tokens

    def row(self, i: int) -> np.ndarray:
        """Row i's ids (a read-only view into the mapped file)."""
        assert self.offsets is not None
        return self.tokens[int(self.offsets[i]) : int(self.offsets[i + 1])]
