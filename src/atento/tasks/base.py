"""The seam between the training loop and what differs from task to task.

A `Task` owns reading and batching its examples, the loss of a batch (with any extra terms),
its validation metrics with the one that selects the best checkpoint and its direction, and
how validation outputs are produced. The loop (`atento.training.loop.Trainer`) composes model,
optimiser, schedule, batch plan and task, and calls only the methods below:

    task.prepare(run_dir, tokenizers)       # tokenizers (built or restored) and the data
    model = build_model(cfg, **task.model_sizes())
    for indices in task.batch_plan(epoch)[k:]:     # dealt out by rank under torchrun
        batch = task.collate(indices).to(device)
        total = task.count(batch)            # summed over micro-batches and ranks
        with autocast: outputs = task.forward(model, batch)
        out = task.loss(outputs, batch)      # the loss summed over the units count() counts
        (out.loss / total).backward()        # out.extras: logged as train_<name>
    metrics = task.validate(model, placement)   # under no_grad, model in eval mode
    task.selection.better(metrics[task.selection.metric], best)

A new task is a new module that subclasses `Task`, plus its entry in `atento.components` (or,
outside the package, `atento.registry.register_task`); its `data_config` dataclass becomes the
config's `data` section.
"""

from __future__ import annotations

import argparse
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from torch import Tensor, nn

from atento.data.batching import Movable
from atento.errors import AtentoError
from atento.predictors.base import Predictor
from atento.training.fused_output import fused_output_loss
from atento.training.loss import sequence_loss

if TYPE_CHECKING:
    from atento.config import Config
    from atento.data.tokenizers import Tokenizer
    from atento.runtime import Placement


@dataclass(frozen=True)
class Selection:
    """The validation metric that picks the best checkpoint, and which way is better."""

    metric: str
    higher_is_better: bool

    @property
    def worst(self) -> float:
        return -math.inf if self.higher_is_better else math.inf

    def better(self, value: float, best: float) -> bool:
        return value > best if self.higher_is_better else value < best


@dataclass
class LossOutput:
    """A batch's loss summed over the units `Task.count` counts (target tokens, examples), so
    that the loop can normalise by a count gathered over several batches or processes.

    `extras` are named terms already included in `loss`, for logging (e.g. a regulariser), as
    detached 0-d tensors on the batch's device: reading them would stall the device every step,
    so the loop adds them up there and writes their mean over the micro-batches since the
    previous validation into metrics.jsonl as `train_<name>`, reading them once."""

    loss: Tensor
    extras: dict[str, Tensor] = field(default_factory=dict)


class Task(ABC):
    """What the training loop and `atento evaluate` need from a task (see the module doc)."""

    name: ClassVar[str] = ""
    data_config: ClassVar[type]  # the dataclass of the config's `data` section
    selection: ClassVar[Selection]
    unit: ClassVar[str] = "tok"  # what count() counts, for the progress bar
    units: ClassVar[str] = "tokens"  # its plural name, in throughput fields (tokens_per_second)
    predictor: ClassVar[type[Predictor]] = Predictor  # the decoding side (predictors/base.py)
    architectures: ClassVar[tuple[str, ...]] = ()  # the model.arch values it takes (): any
    # True: `prepare` runs on every rank and the ranks agree without a collective (a corpus
    # store: local rank 0 builds it, the others wait for its manifest and map the same files).
    # False: rank 0 prepares and the others get its tokenizers by broadcast.
    prepares_on_every_rank: ClassVar[bool] = False

    def __init__(self, cfg: Config, *, log=print) -> None:
        self.cfg = cfg
        self.log = log
        self.tokenizers: dict[str, Tokenizer] = {}
        # the run directory on EVERY rank (the loop sets it; `prepare` gets it on rank 0 only,
        # as the place to write): ranks > 0 read from it, e.g. which corpus store it recorded
        self.run_dir: Path | None = None

    # ---------------------------------------------------------------- training
    @abstractmethod
    def prepare(self, run_dir: Path | None, tokenizers: dict[str, Tokenizer] | None) -> None:
        """Build (new run: from the training data, saved into `run_dir`) or restore the
        tokenizers, then read and encode the training and validation data."""

    @abstractmethod
    def model_sizes(self) -> dict[str, int]:
        """Keyword arguments for `registry.build_model` (e.g. vocabulary sizes)."""

    def describe(self) -> str:
        """One line about the data, for the run log."""
        return ""

    def batch_plan(self, epoch: int) -> list[list[int]]:
        """The training batches of `epoch` as lists of example indices; the same epoch (and
        config) gives the same plan, so a resumed run continues at its position in it.
        Default: the epoch's batches of the `self.sampler` (e.g. a `TokenBatchSampler`) that
        `prepare` made."""
        sampler = getattr(self, "sampler", None)
        if sampler is None:
            raise NotImplementedError(f"the {self.name} task has no sampler: define batch_plan")
        return sampler.batches(epoch)

    @abstractmethod
    def collate(self, indices: list[int]) -> Movable:
        """One batch of training examples (on the CPU)."""

    @abstractmethod
    def count(self, batch: Any) -> int:
        """The loss units in `batch` (target tokens, examples), known before the forward: the
        loop normalises a step's summed loss by their total over micro-batches and ranks."""

    @abstractmethod
    def forward(self, model: nn.Module, batch: Any) -> Any:
        """The model's outputs for `batch` (run under the loop's autocast)."""

    @abstractmethod
    def loss(self, outputs: Any, batch: Any) -> LossOutput:
        """The summed training loss of `batch` (in fp32, outside autocast)."""

    @abstractmethod
    def validate(self, model: nn.Module, placement: Placement) -> dict[str, float]:
        """Validation metrics, `selection.metric` among them (no_grad, eval mode)."""

    def format_metrics(self, metrics: dict[str, float]) -> str:
        """One line for the run log."""
        return " ".join(f"{k} {v:.4g}" for k, v in metrics.items())

    # ---------------------------------------------------------------- evaluate
    @classmethod
    def add_evaluate_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Options of `atento evaluate` this task reads (every task's are registered)."""
        return None

    def print_report(self, report: dict[str, Any]) -> None:
        """The human-readable form of `evaluate`'s report (default: one `key: value` a line)."""
        for key, value in report.items():
            print(f"{key}: {value}")

    def attention_map(
        self, run: Any, text: str, *, layer: int, head: int | None
    ) -> tuple[Tensor, list[str], list[str]]:
        """`atento attention` for a task without a decoder to follow (language models,
        classifiers): the self-attention weights (H, T, T) of `layer` over `text` (all heads;
        the command averages or picks one), with the row and column labels. Translation
        draws its decoded hypothesis instead (cli/attention.py)."""
        raise AtentoError(f"the {self.name} task has no attention to draw")

    def evaluate(self, run: Any, args: argparse.Namespace) -> dict[str, Any]:
        """`atento evaluate` for a loaded run: task-specific report fields; the command adds
        the common ones. AtentoError when `args` lacks what this task needs."""
        raise NotImplementedError(f"the {self.name} task has no evaluate")


def loss_metrics(total: float, count: int) -> dict[str, float]:
    """The mean of a summed loss over `count` units (nats) and its perplexity, for the log."""
    loss = total / max(count, 1)
    return {"loss": round(loss, 4), "ppl": round(math.exp(min(loss, 50)), 3)}


def teacher_forced_loss(model: nn.Module, batches: Iterable[Any], device: Any) -> dict:
    """`loss_metrics` of an encoder-decoder's next-token loss over `batches` (each with
    `sources`, `tgt_in`, `tgt_out`, `n_tgt_tokens`): translation's and captioning's validation."""
    total, tokens = 0.0, 0
    inner = getattr(model, "module", model)
    for batch in batches:
        batch = batch.to(device)
        if hasattr(inner, "output_layer"):  # chunked: no (B, T, V) logits (issue 24's peak)
            h, _ = model(*batch.sources, batch.tgt_in, select=batch.tgt_mask, hidden=True)
            weight, bias = inner.output_layer()
            targets = batch.tgt_out[batch.tgt_mask]
            total += float(fused_output_loss(h, weight, targets, bias=bias))
        else:
            logits, _ = model(*batch.sources, batch.tgt_in)
            total += float(sequence_loss(logits, batch.tgt_out, mask=batch.tgt_mask))
        tokens += batch.n_tgt_tokens
    return loss_metrics(total, tokens)
