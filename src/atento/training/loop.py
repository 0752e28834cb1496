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

Beside it: `stopping` (budgets, patience, deferred Ctrl-C), `checkpointing` (what a checkpoint
holds of the trainer, and restoring it), `run_files` (the run directory's files), `report`
(progress bar, throughput, `TrainResult`) and `optimizer` (AdamW's parameter groups).
"""

from __future__ import annotations

import contextlib
import random
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from atento import faults
from atento.attention.multihead import set_explicit_attention
from atento.checkpoints import BEST, LAST
from atento.config import Config
from atento.data.tokenizers import tokenizer_from_state
from atento.errors import AtentoError
from atento.models.factory import count_parameters
from atento.registry import build_model, placement_for, task_class
from atento.runtime import Placement, peak_memory_mb
from atento.training.checkpointing import Progress, capture, restore
from atento.training.compiling import StepCompiler
from atento.training.distributed import World, deal, rank_batches
from atento.training.ema import WeightAverage
from atento.training.optimizer import build_optimizer
from atento.training.report import ExtrasMeter, TrainResult, progress_bar, throughput
from atento.training.run_files import RunFiles
from atento.training.schedule import schedule_factor
from atento.training.stopping import budget_reached, interrupts_deferred, record_score


class Trainer:
    """`placement`: where and in what precision to train; by default the config's, chosen and
    logged here (a caller that passes one has said which, as `atento train` does)."""

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
        self.files = RunFiles(self.run_dir, self.world, self.log)
        ckpt = self.files.open(cfg, resume)
        if placement is None:
            self.log(f"runtime: {self.placement.describe()}")
        if self.world.distributed:
            self.log(f"distributed: {self.world.size} ranks x {cfg.train.accum_steps} "
                     f"micro-batches a step (torch.distributed)")  # fmt: skip
        self._seed(cfg.train.seed)
        self.task = task_class(cfg.task)(cfg, log=self.log)
        self._prepare_task(None if ckpt is None else ckpt.tokenizers)
        self.model = build_model(cfg, **self.task.model_sizes()).to(self.placement.device)
        set_explicit_attention(self.model, cfg.train.explicit_attention)
        if self.world.rank > 0:  # same initial weights; each rank its own dropout masks
            self._seed(cfg.train.seed + self.world.rank)
        self.compiler = StepCompiler.build(self.model, cfg.runtime, self.placement,
                                           arch=cfg.model.arch, log=self.log)  # fmt: skip
        self.log(self.compiler.describe())
        self.ddp = self.model
        if self.world.distributed:
            from torch.nn.parallel import DistributedDataParallel

            device = self.placement.device
            ids = [device] if device.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.model, device_ids=ids)
        self.optimizer = build_optimizer(self.model, cfg.train)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, schedule_factor(cfg.train)
        )
        self.scaler = self.placement.grad_scaler()
        decay = cfg.train.ema_decay
        self.ema = WeightAverage(self.model, decay) if decay > 0 else None
        self.state = Progress()
        self.extras = ExtrasMeter()  # the loss's extra terms since the last validation
        if ckpt is not None:
            restore(self, ckpt)

    # ---------------------------------------------------------------- set-up
    def _prepare_task(self, tokenizers) -> None:
        """Rank 0 builds the tokenizers (into the run directory); the others get them from it,
        or, for a task with a corpus store, from the same store (no collective: a long prepare
        must not run into runtime.collective_timeout)."""
        world = self.world
        self.task.run_dir = self.run_dir
        if self.task.prepares_on_every_rank:
            self.task.prepare(self.run_dir if world.main else None, tokenizers)
            return
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

    def save_last(self) -> None:
        """Write `checkpoint_last` (rank 0); every rank must call it (RNG states are gathered)."""
        ckpt = capture(self, full=True)
        if self.world.main:
            self.files.save(ckpt, LAST)

    # ---------------------------------------------------------------- steps
    def train_step(self, batches) -> tuple[float, int]:
        """One update on `batches` (this rank's micro-batches of the step, on the model's device;
        one batch alone is fine). The loss is normalised by the step's GLOBAL count of loss
        units (target tokens for translation, summed over micro-batches and ranks), so W ranks
        with budget B train like one process with budget W * B. Returns that mean loss and count.
        """
        batches = batches if isinstance(batches, list) else [batches]
        world = self.world
        self.model.train()
        local = sum(self.task.count(b) for b in batches)
        total = int(world.sum([local], self.placement.device)[0]) if world.distributed else local
        value = self.compiler.run(lambda: self._gradients(batches, total))
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

    def _gradients(self, batches: list, total: int) -> float:
        """Zeroed, then the gradients of the step's micro-batches (`runtime.compile` runs this
        again eagerly where compiling fails); this rank's share of the mean loss."""
        W = self.world.size
        self.optimizer.zero_grad(set_to_none=True)
        value = 0.0
        for i, batch in enumerate(batches):
            last = i == len(batches) - 1
            sync = contextlib.nullcontext() if last or W == 1 else self.ddp.no_sync()
            with sync:
                with self.placement.autocast():
                    outputs = self.task.forward(self.ddp, batch)
                out = self.task.loss(outputs, batch)
                self.extras.add(out.extras)
                # DDP averages gradients over the W ranks: scale by W to get the global sum
                loss = out.loss / total if W == 1 else out.loss * (W / total)
                self.scaler.scale(loss).backward()
            value += float(loss.detach()) / W
        return value

    def validate(self) -> dict[str, float]:
        """The task's validation metrics (of the averaged weights with train.ema_decay > 0)."""
        average = self.ema.applied() if self.ema is not None else contextlib.nullcontext()
        with average, torch.no_grad(), self.compiler.eager():
            self.model.eval()
            return self.task.validate(self.model, self.placement)

    # ---------------------------------------------------------------- loop
    def _stop(self) -> str | None:
        """The budget that ends training, the same on every rank (one rank's clock may pass
        train.max_minutes a step before another's)."""
        reason = budget_reached(self.cfg.train, self.state)
        if self.world.distributed and self.world.any(reason is not None, self.placement.device):
            return reason or "another rank's budget"
        return reason

    def _validate_and_save(self) -> dict[str, float] | None:
        """Rank 0 validates, logs and writes; the others wait, then take its best score."""
        s, selection = self.state, self.task.selection
        metrics, extras = None, self.extras.read(self.world, self.placement.device)
        if self.world.main:
            metrics = self.validate()
            improved = record_score(selection, s, float(metrics[selection.metric]))
            row = {
                "step": s.step,
                "epoch": s.epoch,
                **metrics,
                "seconds": round(s.elapsed, 1),
                "lr": self.scheduler.get_last_lr()[0],
                f"train_{self.task.units}_per_second": throughput(s),
                **extras,
            }
            self.files.append_metrics(row)
            faults.point("validation")
            if improved:
                self.files.save(capture(self, full=False), BEST)
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
        s = self.state
        self.log(f"{count_parameters(self.model):,} parameters; {self.task.describe()}")
        bar = progress_bar(s, self.cfg.train.max_steps, enabled=self.progress)
        self._validated_at = s.step if s.step else -1
        self._session = (time.perf_counter(), s.elapsed)  # this session's start, time before
        stopped_by = self._stop()
        try:
            while stopped_by is None:
                stopped_by = self._epoch(bar)
        except KeyboardInterrupt:
            bar.close()
            self._interrupted()
            raise
        bar.close()
        if self._validated_at != s.step:
            self._validate_and_save()
        else:
            self.save_last()
        return self._result(stopped_by)

    def _epoch(self, bar: tqdm) -> str | None:
        """Steps through the rest of the current epoch's plan, validating and saving on the
        way, until its end or a budget; the budget reached, if any."""
        t, s = self.cfg.train, self.state
        plan = self._epoch_plan(s.epoch)
        stopped_by = None
        while s.batch_in_epoch < len(plan) and stopped_by is None:
            loss = self._step(plan)
            bar.update(1)
            bar.set_postfix(
                loss=f"{loss:.3f}",
                **{f"{self.task.unit}_s": f"{s.train_tokens / s.train_seconds:.0f}"},
                refresh=False,
            )
            if t.valid_every and s.step % t.valid_every == 0:
                self._validate_and_save()
                self._validated_at = s.step
            elif t.checkpoint_every and s.step % t.checkpoint_every == 0:
                self.save_last()
            stopped_by = self._stop()
        if s.batch_in_epoch >= len(plan):
            s.epoch, s.batch_in_epoch = s.epoch + 1, 0
            stopped_by = stopped_by or self._stop()
        return stopped_by

    def _step(self, plan: list[list[int]]) -> float:
        """The epoch's next step: this rank's micro-batches of it, one update, and the
        counters that say it happened (together, also under Ctrl-C). Returns the loss."""
        s, world, A = self.state, self.world, self.cfg.train.accum_steps
        per_step = world.size * A  # batches of the plan one step takes
        k = s.batch_in_epoch // per_step  # this epoch's step number
        micro = rank_batches(plan, k, rank=world.rank, world_size=world.size, accum_steps=A)
        batches = [self.task.collate(idx).to(self.placement.device) for idx in micro]
        start, elapsed0 = self._session
        tick = time.perf_counter()
        with interrupts_deferred():  # weights and counters change together
            loss, count = self.train_step(batches)
            s.train_seconds += time.perf_counter() - tick
            s.train_tokens += count
            s.step += 1
            s.batch_in_epoch += per_step
            s.elapsed = elapsed0 + time.perf_counter() - start
        return loss

    def _interrupted(self) -> None:
        """Ctrl-C: save `checkpoint_last` (alone; under torchrun the other ranks are stopping
        too, so there is no collective to save with)."""
        step = self.state.step
        if self.world.distributed:
            self.log(f"interrupted at step {step}; --resume continues from the last checkpoint")
            return
        self.save_last()
        self.log(f"interrupted: saved {self.run_dir / LAST} at step {step}; --resume continues")

    def _result(self, stopped_by: str | None) -> TrainResult:
        s, device = self.state, self.placement.device
        peak = peak_memory_mb(device)
        return TrainResult(
            run_dir=self.run_dir, steps=s.step, metric=self.task.selection.metric,
            best_score=s.best_score, seconds=round(s.elapsed, 1), throughput=throughput(s),
            parameters=count_parameters(self.model), peak_memory_mb=peak["host"],
            peak_device_memory_mb=peak.get("device"), device=str(device),
            precision=self.placement.precision, world_size=self.world.size,
            stopped_by=stopped_by or "done", units=self.task.units,
            compiled=self.compiler.summary(),
        )  # fmt: skip
