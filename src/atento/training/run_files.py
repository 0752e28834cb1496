"""The run directory as the training loop writes it (rank 0 only; every rank reads).

`config.yaml` (the resolved config), the tokenizer files (written by the task),
`checkpoint_last/` and `checkpoint_best/` (`atento.checkpoints`, committed atomically) and
`metrics.jsonl` (one JSON row per validation). A full or read-only disk while writing any of
them is a one-line `AtentoError` that keeps the last good checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atento.checkpoints import (
    LAST,
    Checkpoint,
    find_checkpoint,
    load_checkpoint,
    remove_stale,
    save_checkpoint,
)
from atento.config_io import dump_config
from atento.errors import AtentoError
from atento.training.checkpointing import check_same_model

if TYPE_CHECKING:
    from atento.config import Config
    from atento.training.distributed import World

METRICS = "metrics.jsonl"


def has_checkpoint(run_dir: Path) -> bool:
    """Whether `run_dir` holds a checkpoint of either kind (new or legacy format)."""
    try:
        find_checkpoint(run_dir, "last")
    except AtentoError:
        return False
    return True


class RunFiles:
    def __init__(self, run_dir: Path, world: World, log: Callable[[str], Any]) -> None:
        self.run_dir, self.world, self.log = run_dir, world, log

    def open(self, cfg: Config, resume: bool) -> Checkpoint | None:
        """A new run: refuse a directory that holds one, create it and write `config.yaml`.
        A resume: the last checkpoint (every rank reads it; rank 0 then writes `config.yaml`
        and drops the metrics rows written after it)."""
        main = self.world.main
        if resume:
            if main:
                remove_stale(self.run_dir)  # what a save cut short by a kill left behind
            self.world.barrier()
            path = find_checkpoint(self.run_dir, "last")
            if path.name != LAST and not path.name.startswith(LAST):
                raise AtentoError(f"cannot resume: no {LAST} in {self.run_dir}")
            ckpt = load_checkpoint(path, training=True)
            check_same_model(cfg, ckpt.config)
            self.world.barrier()  # all have read it before anything is written
            if main:
                with self.writing():
                    dump_config(cfg, self.run_dir / "config.yaml")
                    self.trim_metrics(ckpt.step)
            return ckpt
        if has_checkpoint(self.run_dir):
            raise AtentoError(
                f"{self.run_dir} already holds a run; pass --resume or choose another --out"
            )
        self.world.barrier()  # every rank has looked before rank 0 writes
        if main:
            with self.writing():
                self.run_dir.mkdir(parents=True, exist_ok=True)
                dump_config(cfg, self.run_dir / "config.yaml")
        return None

    def trim_metrics(self, step: int) -> None:
        """Drop metrics.jsonl rows written after the checkpoint being resumed (a run killed
        between a validation's row and its checkpoint): they are written again, once."""
        path = self.run_dir / METRICS
        if not path.is_file():
            return
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= step]
        if len(kept) != len(lines):
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text("".join(kept), encoding="utf-8")
            os.replace(tmp, path)
            self.log(f"metrics.jsonl: {len(lines) - len(kept)} row(s) after step {step} dropped")

    def append_metrics(self, row: dict[str, Any]) -> None:
        with self.writing(), open(self.run_dir / METRICS, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")

    def save(self, ckpt: Checkpoint, name: str) -> None:
        """Write `ckpt` as `name` (checkpoint_last, checkpoint_best) of the run directory."""
        with self.writing():
            save_checkpoint(ckpt, self.run_dir / name)

    @contextlib.contextmanager
    def writing(self):
        """A full or read-only disk while writing the run directory: a one-line error; the
        checkpoint being replaced is left as it was (atento.checkpoints commits atomically)."""
        try:
            yield
        except OSError as exc:
            where = exc.filename or self.run_dir
            raise AtentoError(
                f"cannot write {where}: {exc.strerror or exc}; the last good checkpoint in "
                f"{self.run_dir} is kept (--resume continues from it)"
            ) from None
