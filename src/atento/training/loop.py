"""The training loop: model, optimiser, schedule, batch plan and task, composed.

    result = Trainer(cfg, run_dir).fit()

The loop knows nothing of what a batch holds or how it is scored: the task
(`atento.tasks.base.Task`, chosen by `cfg.task`) reads and batches the examples, computes the
loss of a batch and the validation metrics, and names the metric that selects the best
checkpoint and its direction. The loop owns the device and precision (`atento.runtime`), the
optimiser (Adam with warm-up and inverse-square-root decay), an optional weight average, the
budgets, validation and checkpoints (`atento.checkpoints`).

A run directory holds `config.yaml`, the tokenizer files, `checkpoint_last/` (everything needed
to resume: weights, optimiser, scheduler, RNG states, position in the batch plan, best score,
elapsed time), `checkpoint_best/` (by the task's metric) and `metrics.jsonl` (one line per
validation). `Trainer(cfg, run_dir, resume=True)` continues exactly where the last checkpoint
left off, also after `kill -9`; Ctrl-C saves a checkpoint before stopping.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from atento import faults
from atento.checkpoints import (
    BEST,
    LAST,
    Checkpoint,
    capture_rng,
    find_checkpoint,
    load_checkpoint,
    remove_stale,
    restore_rng,
    save_checkpoint,
)
from atento.config import Config, config_to_dict, dump_config
from atento.data.tokenizers import tokenizer_from_state
from atento.errors import AtentoError
from atento.models.factory import count_parameters
from atento.registry import build_model, placement_for, task_class
from atento.runtime import Placement, peak_memory_mb
from atento.training.distributed import World, deal, rank_batches
from atento.training.ema import WeightAverage
from atento.training.schedule import schedule_factor


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


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    metric: str  # the task's selection metric
    best_score: float | None
    seconds: float
    tokens_per_second: float
    parameters: int
    peak_memory_mb: float  # host
    peak_device_memory_mb: float | None  # CUDA only
    device: str
    precision: str
    world_size: int
    stopped_by: str


METRICS = "metrics.jsonl"


def has_checkpoint(run_dir: Path) -> bool:
    """Whether `run_dir` holds a checkpoint of either kind (new or legacy format)."""
    try:
        find_checkpoint(run_dir, "last")
    except AtentoError:
        return False
    return True


class Trainer:
    def __init__(
        self, cfg: Config, run_dir: str | Path, *, resume: bool = False, progress: bool = True,
        placement: Placement | None = None, world: World | None = None,
    ) -> None:  # fmt: skip
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.world = world or World()
        self.progress = progress and self.world.main
        self.log = tqdm.write if self.progress else (lambda *_: None)
        self.placement = placement or placement_for(cfg)
        ckpt = self._open_run_dir(resume)
        self.log(f"runtime: {self.placement.describe()}")
        if self.world.distributed:
            self.log(f"distributed: {self.world.size} ranks x {cfg.train.accum_steps} "
                     f"micro-batches a step (torch.distributed)")  # fmt: skip
        self._seed(cfg.train.seed)
        self.task = task_class(cfg.task)(cfg, log=self.log)
        self._prepare_task(None if ckpt is None else ckpt.tokenizers)
        self.model = build_model(cfg, **self.task.model_sizes()).to(self.placement.device)
        if self.world.rank > 0:  # same initial weights; each rank its own dropout masks
            self._seed(cfg.train.seed + self.world.rank)
        self.ddp = self.model
        if self.world.distributed:
            from torch.nn.parallel import DistributedDataParallel

            device = self.placement.device
            ids = [device] if device.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.model, device_ids=ids)
        self.optimizer = torch.optim.AdamW(
            _param_groups(self.model, cfg.train.weight_decay, cfg.train.lr), lr=cfg.train.lr,
            betas=(0.9, cfg.train.beta2), eps=1e-9,
        )  # fmt: skip
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, schedule_factor(cfg.train)
        )
        self.scaler = self.placement.grad_scaler()
        decay = cfg.train.ema_decay
        self.ema = WeightAverage(self.model, decay) if decay > 0 else None
        self.state = Progress()
        if ckpt is not None:
            self._restore(ckpt)

    # ---------------------------------------------------------------- set-up
    def _open_run_dir(self, resume: bool) -> Checkpoint | None:
        """Every rank reads the checkpoint to resume from; only rank 0 writes."""
        main = self.world.main
        if resume:
            if main:
                remove_stale(self.run_dir)  # what a save cut short by a kill left behind
            self.world.barrier()
            path = find_checkpoint(self.run_dir, "last")
            if path.name != LAST and not path.name.startswith(LAST):
                raise AtentoError(f"cannot resume: no {LAST} in {self.run_dir}")
            ckpt = load_checkpoint(path, training=True)
            self.world.barrier()  # all have read it before anything is written
            if main:
                with self._writing():
                    dump_config(self.cfg, self.run_dir / "config.yaml")
                    self._trim_metrics(ckpt.step)
            return ckpt
        if has_checkpoint(self.run_dir):
            raise AtentoError(
                f"{self.run_dir} already holds a run; pass --resume or choose another --out"
            )
        self.world.barrier()  # every rank has looked before rank 0 writes
        if main:
            with self._writing():
                self.run_dir.mkdir(parents=True, exist_ok=True)
                dump_config(self.cfg, self.run_dir / "config.yaml")
        return None

    def _trim_metrics(self, step: int) -> None:
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

    def _prepare_task(self, tokenizers) -> None:
        """Rank 0 builds the tokenizers (into the run directory); the others get them from it."""
        world = self.world
        if world.main or tokenizers is not None:
            self.task.prepare(self.run_dir if world.main else None, tokenizers)
        if world.distributed and tokenizers is None:
            states = {k: t.state() for k, t in self.task.tokenizers.items()} if world.main else None
            states = world.broadcast(states)
            if not world.main:
                self.task.prepare(None, {k: tokenizer_from_state(v) for k, v in states.items()})

    @staticmethod
    def _seed(seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    def _restore(self, ckpt: Checkpoint) -> None:
        training = ckpt.training or {}
        if "optimizer" not in training:
            raise AtentoError(f"cannot resume from {ckpt.path}: it holds no training state")
        # with an average, `model` holds the averaged weights and `train_model` the raw ones
        self.model.load_state_dict(ckpt.train_model if ckpt.train_model is not None else ckpt.model)
        if self.ema is not None and ckpt.train_model is not None:
            self.ema.load(ckpt.model, int(training["ema_updates"]))
        elif self.ema is not None:  # averaging switched on at resume: start from these weights
            self.ema = WeightAverage(self.model, self.ema.decay)
        self.optimizer.load_state_dict(training["optimizer"])
        self.scheduler.load_state_dict(training["scheduler"])
        if "scaler" in training:
            self.scaler.load_state_dict(training["scaler"])
        layout = training.get("world", {"world_size": 1, "accum_steps": 1})
        now = {"world_size": self.world.size, "accum_steps": self.cfg.train.accum_steps}
        if layout != now:
            raise AtentoError(
                f"cannot resume {self.run_dir}: it was trained with {layout['world_size']} "
                f"process(es) x train.accum_steps={layout['accum_steps']}, now "
                f"{now['world_size']} x {now['accum_steps']}; its position in the batch plan "
                f"and its RNG streams belong to that layout (restart it with that layout)"
            )
        progress = dict(ckpt.progress or {})
        if "best_bleu" in progress:  # a checkpoint of the release before the Task seam
            best = progress.pop("best_bleu")
            progress["best_score"] = best if best is not None and best >= 0 else None
        known = {f.name for f in fields(Progress)}
        self.state = Progress(**{k: v for k, v in progress.items() if k in known})
        ranks = training.get("rng_ranks")
        restore_rng(ranks[self.world.rank] if ranks else training["rng"])
        self.log(f"resumed {self.run_dir} at step {self.state.step}")

    def _checkpoint(self, *, full: bool) -> Checkpoint:
        weights = _cpu(self.model.state_dict())
        ckpt = Checkpoint(
            config=config_to_dict(self.cfg), tokenizers=self.task.tokenizers, model=weights,
            step=self.state.step, progress=asdict(self.state),
        )  # fmt: skip
        training = {}
        if self.ema is not None:  # decoding loads `model`: the averaged weights
            ckpt.model = _cpu(self.ema.averaged_state_dict())
            if full:
                ckpt.train_model = weights
                training["ema_updates"] = self.ema.updates
        if full:
            rng = capture_rng()
            training.update(
                optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
                scaler=self.scaler.state_dict(), rng=rng,
                world={"world_size": self.world.size, "accum_steps": self.cfg.train.accum_steps},
            )  # fmt: skip
            if self.world.distributed:  # every rank's RNG streams (a collective)
                training["rng_ranks"] = self.world.gather(rng)
            ckpt.training = training
        return ckpt

    def save_last(self) -> None:
        """Write `checkpoint_last` (rank 0); every rank must call it (RNG states are gathered)."""
        ckpt = self._checkpoint(full=True)
        if self.world.main:
            with self._writing():
                save_checkpoint(ckpt, self.run_dir / LAST)

    @contextlib.contextmanager
    def _writing(self):
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

    # ---------------------------------------------------------------- steps
    def train_step(self, batches) -> tuple[float, int]:
        """One update on `batches` (this rank's micro-batches of the step, on the model's device;
        one batch alone is fine). The loss is normalised by the step's GLOBAL count of loss
        units (target tokens for translation, summed over micro-batches and ranks), so W ranks
        with budget B train like one process with budget W * B. Returns that mean loss and count.
        """
        batches = batches if isinstance(batches, list) else [batches]
        world, W = self.world, self.world.size
        self.model.train()
        local = sum(self.task.count(b) for b in batches)
        total = int(world.sum([local], self.placement.device)[0]) if world.distributed else local
        self.optimizer.zero_grad(set_to_none=True)
        value = 0.0
        for i, batch in enumerate(batches):
            last = i == len(batches) - 1
            sync = contextlib.nullcontext() if last or W == 1 else self.ddp.no_sync()
            with sync:
                with self.placement.autocast():
                    outputs = self.task.forward(self.ddp, batch)
                out = self.task.loss(outputs, batch)
                # DDP averages gradients over the W ranks: scale by W to get the global sum
                loss = out.loss / total if W == 1 else out.loss * (W / total)
                self.scaler.scale(loss).backward()
            value += float(loss.detach()) / W
        faults.point("step")
        if world.distributed:
            value = world.sum([value], self.placement.device)[0]
        if self.cfg.train.clip_norm > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update()
        return value, total

    def validate(self) -> dict[str, float]:
        """The task's validation metrics (of the averaged weights with train.ema_decay > 0)."""
        average = self.ema.applied() if self.ema is not None else contextlib.nullcontext()
        with average, torch.no_grad():
            self.model.eval()
            return self.task.validate(self.model, self.placement)

    # ---------------------------------------------------------------- loop
    def _budget_left(self) -> str | None:
        t, s = self.cfg.train, self.state
        if t.max_steps and s.step >= t.max_steps:
            return "max_steps"
        if t.max_epochs and s.epoch >= t.max_epochs:
            return "max_epochs"
        if t.max_minutes and s.elapsed >= t.max_minutes * 60:
            return "max_minutes"
        if t.patience and s.bad_validations >= t.patience:
            return "early_stopping"
        return None

    def _stop(self) -> str | None:
        """The budget that ends training, the same on every rank (one rank's clock may pass
        train.max_minutes a step before another's)."""
        reason = self._budget_left()
        if self.world.distributed and self.world.any(reason is not None, self.placement.device):
            return reason or "another rank's budget"
        return reason

    def _validate_and_save(self) -> dict[str, float] | None:
        """Rank 0 validates, logs and writes; the others wait, then take its best score."""
        s, selection = self.state, self.task.selection
        metrics = None
        if self.world.main:
            metrics = self.validate()
            value = float(metrics[selection.metric])
            improved = s.best_score is None or selection.better(value, s.best_score)
            if improved:
                s.best_score, s.bad_validations = value, 0
            else:
                s.bad_validations += 1
            row = {
                "step": s.step,
                "epoch": s.epoch,
                **metrics,
                "seconds": round(s.elapsed, 1),
                "lr": self.scheduler.get_last_lr()[0],
                "train_tokens_per_second": round(s.train_tokens / max(s.train_seconds, 1e-9), 1),
            }
            with self._writing(), open(self.run_dir / METRICS, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")
            faults.point("validation")
            if improved:
                with self._writing():
                    save_checkpoint(self._checkpoint(full=False), self.run_dir / BEST)
            self.log(
                f"step {s.step} epoch {s.epoch}: {self.task.format_metrics(metrics)}"
                + (" (best)" if improved else "")
            )
        s.best_score, s.bad_validations = self.world.broadcast((s.best_score, s.bad_validations))
        self.save_last()
        return metrics

    def _epoch_plan(self, epoch: int) -> list[list[int]]:
        """The task's plan for `epoch`, trimmed to whole steps of W ranks x A micro-batches."""
        W, A = self.world.size, self.cfg.train.accum_steps
        plan, dropped = deal(self.task.batch_plan(epoch), epoch=epoch, world_size=W,
                             accum_steps=A)  # fmt: skip
        if not plan:
            raise AtentoError(
                f"the training data makes {len(dropped)} batches, fewer than the {W} process(es)"
                f" x train.accum_steps={A} that one step takes"
            )
        if dropped and self.state.batch_in_epoch == 0:
            self.log(f"epoch {epoch}: {len(dropped)} of {len(plan) + len(dropped)} batches left "
                     f"out ({W} x {A} a step; which ones rotates with the epoch)")  # fmt: skip
        return plan

    def fit(self) -> TrainResult:
        t, s, world = self.cfg.train, self.state, self.world
        per_step = world.size * t.accum_steps  # batches of the plan one step takes
        self.log(f"{count_parameters(self.model):,} parameters; {self.task.describe()}")
        bar = tqdm(total=t.max_steps or None, initial=s.step, desc="training", unit="step",
                   disable=not self.progress, dynamic_ncols=True,
                   mininterval=0.5 if sys.stderr.isatty() else 30.0)  # fmt: skip
        validated_at = s.step if s.step else -1
        start, elapsed0 = time.perf_counter(), s.elapsed
        device = self.placement.device
        stopped_by = self._stop()
        try:
            while stopped_by is None:
                plan = self._epoch_plan(s.epoch)
                while s.batch_in_epoch < len(plan) and stopped_by is None:
                    k = s.batch_in_epoch // per_step  # this epoch's step number
                    micro = rank_batches(
                        plan, k, rank=world.rank, world_size=world.size, accum_steps=t.accum_steps
                    )
                    batches = [self.task.collate(idx).to(device) for idx in micro]
                    tick = time.perf_counter()
                    with _interrupts_deferred():  # weights and counters change together
                        loss, count = self.train_step(batches)
                        s.train_seconds += time.perf_counter() - tick
                        s.train_tokens += count
                        s.step += 1
                        s.batch_in_epoch += per_step
                        s.elapsed = elapsed0 + time.perf_counter() - start
                    bar.update(1)
                    bar.set_postfix(
                        loss=f"{loss:.3f}",
                        **{f"{self.task.unit}_s": f"{s.train_tokens / s.train_seconds:.0f}"},
                        refresh=False,
                    )
                    if t.valid_every and s.step % t.valid_every == 0:
                        self._validate_and_save()
                        validated_at = s.step
                    elif t.checkpoint_every and s.step % t.checkpoint_every == 0:
                        self.save_last()
                    stopped_by = self._stop()
                if s.batch_in_epoch >= len(plan):
                    s.epoch, s.batch_in_epoch = s.epoch + 1, 0
                    stopped_by = stopped_by or self._stop()
        except KeyboardInterrupt:
            bar.close()
            if world.distributed:  # the other ranks are stopping too: no collective to save
                self.log(f"interrupted at step {s.step}; --resume continues from the last "
                         f"checkpoint")  # fmt: skip
                raise
            self.save_last()
            self.log(
                f"interrupted: saved {self.run_dir / LAST} at step {s.step}; --resume continues"
            )
            raise
        bar.close()
        if validated_at != s.step:
            self._validate_and_save()
        else:
            self.save_last()
        peak = peak_memory_mb(device)
        return TrainResult(
            run_dir=self.run_dir, steps=s.step, metric=self.task.selection.metric,
            best_score=s.best_score, seconds=round(s.elapsed, 1),
            tokens_per_second=round(s.train_tokens / max(s.train_seconds, 1e-9), 1),
            parameters=count_parameters(self.model), peak_memory_mb=peak["host"],
            peak_device_memory_mb=peak.get("device"), device=str(device),
            precision=self.placement.precision, world_size=world.size,
            stopped_by=stopped_by or "done",
        )  # fmt: skip


@contextlib.contextmanager
def _interrupts_deferred():
    """Hold Ctrl-C (SIGINT) until the block ends, then raise KeyboardInterrupt: a step and the
    counters that say it happened are never split, so the checkpoint Ctrl-C saves is exact."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            raise KeyboardInterrupt


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in state.items()}


def _param_groups(model: torch.nn.Module, weight_decay: float, lr: float) -> list[dict]:
    """AdamW's parameter groups: decoupled weight decay on the matrices and embeddings only
    (not on biases and LayerNorm gains, as GPT-2 trains); one group when there is no decay
    (Adam's update exactly, and the optimiser state of earlier runs still loads). A submodule
    with an `lr_scale` attribute (e.g. a fine-tuned image encoder's tail) has its parameters in
    groups of their own at `lr * lr_scale` (the schedule scales every group alike)."""
    scale = {id(p): m.lr_scale for m in model.modules() if hasattr(m, "lr_scale")
             for p in m.parameters()}  # fmt: skip
    params = [p for p in model.parameters() if p.requires_grad]
    groups = []
    for s in dict.fromkeys([1.0, *(scale[id(p)] for p in params if id(p) in scale)]):
        mine = [p for p in params if scale.get(id(p), 1.0) == s]
        extra = {} if s == 1.0 else {"lr": lr * s}
        if weight_decay == 0:
            groups.append({"params": mine, "weight_decay": 0.0, **extra})
            continue
        groups += [
            {"params": [p for p in mine if p.dim() >= 2], "weight_decay": weight_decay, **extra},
            {"params": [p for p in mine if p.dim() < 2], "weight_decay": 0.0, **extra},
        ]
    return groups
