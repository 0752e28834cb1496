"""Loading a run directory for decoding: config, tokenizers and weights, on a device.

    run = load_run("runs/x")                 # checkpoint_best (else checkpoint_last)
    run.predictor.translator().translate(["Un chien court."])

Training and decoding share `atento.checkpoints` (storage) and this loader; neither imports
the other. Run directories written by earlier releases (`checkpoint_best.pt`) still load:
their weights without executing pickle, their flat configs migrated (`config_from_dict(...,
migrate=True)`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn

from atento.checkpoints import FORMAT, find_checkpoint, load_checkpoint
from atento.config import Config
from atento.config_io import config_from_dict
from atento.data.tokenizers import Tokenizer
from atento.errors import AtentoError
from atento.registry import build_model, placement_for, task_class
from atento.runtime import Placement
from atento.tasks.base import Task

if TYPE_CHECKING:
    from atento.inference import Translator
    from atento.predictors.base import Predictor


@dataclass
class LoadedRun:
    cfg: Config
    model: nn.Module  # in eval mode, on `placement.device`
    tokenizers: dict[str, Tokenizer]
    step: int
    path: Path
    placement: Placement  # the run's device and its decoding precision (search.precision)
    task: Task

    @property
    def src_tok(self) -> Tokenizer:
        return self.tokenizers["src"]

    @property
    def tgt_tok(self) -> Tokenizer:
        return self.tokenizers["tgt"]

    def translator(self) -> Translator:
        """The run's translator with its own search settings (`predictor.translator()` takes
        settings); AtentoError for a run whose task does not translate."""
        predictor = self.predictor
        if not hasattr(predictor, "base_translator"):
            predictor.require("translate")
        return predictor.base_translator()

    @property
    def predictor(self) -> Predictor:
        """What this run offers for decoding: its task's predictor (atento.predictors)."""
        return type(self.task).predictor(self)


def load_run(run_dir: str | Path, which: str = "best", *, device: str | None = None) -> LoadedRun:
    """Load a run directory's best (or last) checkpoint onto `device` (default: the run's
    `runtime.device`), in eval mode; AtentoError (one line) for anything unusable."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise AtentoError(f"run directory not found: {run_dir}")
    ckpt = load_checkpoint(find_checkpoint(run_dir, which))
    cfg = config_from_dict(ckpt.config, migrate=ckpt.format < FORMAT)
    placement = placement_for(cfg, device=device)
    placement = placement.with_precision(cfg.search.precision, key="search.precision")
    task = task_class(cfg.task)(cfg)
    task.tokenizers = dict(ckpt.tokenizers)
    model = build_model(cfg, **task.model_sizes())
    try:
        model.load_state_dict(ckpt.model)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise AtentoError(f"{ckpt.path} does not fit its config's model ({first})") from None
    model.to(placement.device).eval()
    return LoadedRun(cfg, model, task.tokenizers, ckpt.step, Path(run_dir), placement, task)
