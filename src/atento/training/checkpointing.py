"""What a training checkpoint holds of the loop, and putting it back on resume.

`checkpoint_last` holds everything needed to continue exactly: weights (with an average, the
averaged ones in `model` and the raw ones in `train_model`), optimiser, scheduler, gradient
scaler, every rank's RNG states, the process layout and `Progress` (position in the batch plan,
best score, elapsed time). `checkpoint_best` holds the weights and `Progress` only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import torch

from atento.checkpoints import Checkpoint, capture_rng, restore_rng
from atento.config import config_to_dict
from atento.errors import AtentoError
from atento.training.ema import WeightAverage
from atento.training.optimizer import load_optimizer_state

if TYPE_CHECKING:
    from torch import nn

    from atento.config import Config
    from atento.tasks.base import Task
    from atento.training.distributed import World

# model keys that may change when a run resumes: they shape no weight (dropout) or act only
# when a run starts or through optimiser state the checkpoint restores
FREE_ON_RESUME = ("init_from", "finetune_lr_scale")


@dataclass
class Progress:
    """Where the loop stands; saved in every checkpoint."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of the epoch's (trimmed) plan taken, by all ranks
    best_score: float | None = None  # best value of the task's selection metric so far
    bad_validations: int = 0
    elapsed: float = 0.0  # seconds of training so far, over all sessions of this run
    train_tokens: int = 0  # units of the task's loss (target tokens for translation)
    train_seconds: float = 0.0  # time inside training steps only (for tokens/s)


class Trainee(Protocol):
    """What `capture` and `restore` read and set of a trainer (`training.loop.Trainer`): named
    here so that this module, which the loop imports, does not import the loop."""

    cfg: Config
    run_dir: Path
    world: World
    task: Task
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    ema: WeightAverage | None
    state: Progress
    log: Callable[[str], object]


def progress_from(saved: dict | None) -> Progress:
    """The `Progress` of a checkpoint, also one of the release before the Task seam."""
    progress = dict(saved or {})
    if "best_bleu" in progress:
        best = progress.pop("best_bleu")
        progress["best_score"] = best if best is not None and best >= 0 else None
    known = {f.name for f in fields(Progress)}
    return Progress(**{k: v for k, v in progress.items() if k in known})


def check_same_model(cfg: Config, saved: dict) -> None:
    """Resuming a run whose checkpoint config is `saved` with `cfg`: a one-line error naming
    every task or model key that differs (the checkpoint's weights would not fit, or would mean
    something else), with both values."""
    now = config_to_dict(cfg)
    pairs = [("task", now["task"], saved.get("task", "translation"))]
    model = saved.get("model") if isinstance(saved.get("model"), dict) else {}
    pairs += [(f"model.{k}", v, model[k]) for k, v in now["model"].items()
              if k in model and not (k.endswith("dropout") or k in FREE_ON_RESUME)]  # fmt: skip
    differ = [(key, ours, theirs) for key, ours, theirs in pairs if ours != theirs]
    if differ:
        ours = ", ".join(f"{key}={value}" for key, value, _ in differ)
        theirs = ", ".join(f"{key}={value}" for key, _, value in differ)
        raise AtentoError(
            f"config: {ours} {'differs' if len(differ) == 1 else 'differ'} from the run's "
            f"{theirs}; resume with the run's config or train into a new --out"
        )


def capture(trainer: Trainee, *, full: bool) -> Checkpoint:
    """The trainer as a checkpoint: `full` for `checkpoint_last` (with the training state; the
    RNG states are gathered from every rank, so every rank must call it), else weights only."""
    weights = _cpu(trainer.model.state_dict())
    ckpt = Checkpoint(
        config=config_to_dict(trainer.cfg), tokenizers=trainer.task.tokenizers, model=weights,
        step=trainer.state.step, progress=asdict(trainer.state),
    )  # fmt: skip
    training = {}
    if trainer.ema is not None:  # decoding loads `model`: the averaged weights
        ckpt.model = _cpu(trainer.ema.averaged_state_dict())
        if full:
            ckpt.train_model = weights
            training["ema_updates"] = trainer.ema.updates
    if full:
        rng = capture_rng()
        training.update(
            optimizer=trainer.optimizer.state_dict(), scheduler=trainer.scheduler.state_dict(),
            scaler=trainer.scaler.state_dict(), rng=rng, world=_layout(trainer),
        )  # fmt: skip
        if trainer.world.distributed:  # every rank's RNG streams (a collective)
            training["rng_ranks"] = trainer.world.gather(rng)
        ckpt.training = training
    return ckpt


def restore(trainer: Trainee, ckpt: Checkpoint) -> None:
    """Put the training state of `checkpoint_last` back into `trainer` (this rank's RNG)."""
    training = ckpt.training or {}
    if "optimizer" not in training:
        raise AtentoError(f"cannot resume from {ckpt.path}: it holds no training state")
    # with an average, `model` holds the averaged weights and `train_model` the raw ones
    try:
        trainer.model.load_state_dict(
            ckpt.train_model if ckpt.train_model is not None else ckpt.model
        )
    except RuntimeError as exc:  # a change check_same_model does not see
        detail = " ".join(str(exc).split("\n", 2)[1:2]).strip() or str(exc).splitlines()[0]
        raise AtentoError(
            f"cannot resume from {ckpt.path}: its weights do not fit the model this config "
            f"builds ({detail}); resume with the run's config or train into a new --out"
        ) from None
    if trainer.ema is not None and ckpt.train_model is not None:
        trainer.ema.load(ckpt.model, int(training["ema_updates"]))
    elif trainer.ema is not None:  # averaging switched on at resume: start from these weights
        trainer.ema = WeightAverage(trainer.model, trainer.ema.decay)
    load_optimizer_state(trainer.optimizer, training["optimizer"])
    trainer.scheduler.load_state_dict(training["scheduler"])
    if "scaler" in training:
        trainer.scaler.load_state_dict(training["scaler"])
    layout = training.get("world", {"world_size": 1, "accum_steps": 1})
    now = _layout(trainer)
    if layout != now:
        raise AtentoError(
            f"cannot resume {trainer.run_dir}: it was trained with {layout['world_size']} "
            f"process(es) x train.accum_steps={layout['accum_steps']}, now "
            f"{now['world_size']} x {now['accum_steps']}; its position in the batch plan "
            f"and its RNG streams belong to that layout (restart it with that layout)"
        )
    trainer.state = progress_from(ckpt.progress)
    ranks = training.get("rng_ranks")
    restore_rng(ranks[trainer.world.rank] if ranks else training["rng"])
    trainer.log(f"resumed {trainer.run_dir} at step {trainer.state.step}")


def _layout(trainer: Trainee) -> dict[str, int]:
    return {"world_size": trainer.world.size, "accum_steps": trainer.cfg.train.accum_steps}


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in state.items()}
