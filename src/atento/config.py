"""The schema of an experiment configuration: its dataclass sections and their checks.

A config names its `task` (default `translation`) and has five sections: `data` (the task's
data section), `model` (the section of its `model.arch`), `train`, `search` and `runtime`. This
module declares the common sections and `Config`; the `data` and `model` sections are the
dataclasses of the task and the architecture (`atento.registry`), which `atento.config_io`
chooses by name when it reads a config:

    cfg = load_config("configs/dates.yaml", overrides=["train.max_steps=100"])  # config_io

Each section's `validate(cfg)` runs once when the config is read, through `Config.validate`;
`check` is the one-line `AtentoError` that names a key. This module imports nothing above
`atento.errors` and `atento.options`, so that models and tasks can declare their sections with
it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from atento.errors import AtentoError
from atento.options import (
    COMPILE_CHOICES,
    COMPILE_SCOPES,
    LINEAR_KERNELS,
    PRECISION_CHOICES,
    OptionError,
    check_beam,
)

DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass
class TrainConfig:
    batch_tokens: int = 3000  # target tokens per batch (per process under torchrun)
    accum_steps: int = 1  # batches (per process) whose gradients make one update
    lr: float = 2e-3
    warmup_steps: int = 200  # linear warm-up, then the decay of train.schedule
    schedule: str = "inverse_sqrt"  # inverse_sqrt | cosine (to train.min_lr at max_steps)
    min_lr: float = 0.0  # cosine: the learning rate at train.max_steps
    beta2: float = 0.98  # AdamW's second-moment decay
    label_smoothing: float = 0.1
    clip_norm: float = 1.0
    weight_decay: float = 0.0
    max_steps: int = 0  # 0 = no limit
    max_epochs: int = 0  # 0 = no limit
    max_minutes: float = 0.0  # 0 = no limit; wall-clock training budget
    valid_every: int = 500  # steps between validations
    valid_sentences: int = 0  # 0 = whole validation set for BLEU
    patience: int = 0  # validations without improvement of the task's metric; 0 = never stop
    checkpoint_every: int = 0  # steps between "last" checkpoints; 0 = at each validation
    seed: int = 1
    ema_decay: float = 0.0  # > 0: validate, keep and translate an exponential moving average
    # output layer + loss in fixed row chunks, logits never whole (training.fused_output):
    # null (auto) = on under bf16/fp16 autocast and in fp32 on a CPU (fp32 on a GPU: plain)
    fused_output: bool | None = None
    # AdamW's fused kernel (torch's fused=True) instead of its per-parameter loop of tensor
    # operations on a CPU (training.optimizer); false keeps earlier runs' updates bit for bit
    fused_optimizer: bool = False
    # multi-head attention of CPU training steps written out (two products and a softmax)
    # instead of PyTorch's fused kernel: null (auto) = under bf16 / fp16 autocast with up to
    # 128 keys, where it measured faster (atento.attention.multihead); true = in every CPU
    # training step (fp32 too, any length); false = always the fused kernel
    explicit_attention: bool | None = None


@dataclass
class SearchConfig:
    beam: int = 5
    alpha: float = 1.0  # length normalisation score / Ty^alpha; 0 disables it
    nbest: int = 1
    max_len_a: float = 1.5  # maximum output length = a * source length + b
    max_len_b: int = 10
    batch_size: int = 64  # sentences per decoding batch
    precision: str = "run"  # run (= runtime.precision) | auto | fp32 | bf16 | fp16
    workers: int = 1  # batches decoded at once, on threads sharing torch's threads out
    ban_unk: bool | None = None  # never output UNK; None: the task decides (on for word captions)
    min_len: int = 0  # EOS not generated before this many tokens (equal lengths in benchmarks)


@dataclass
class RuntimeConfig:
    """Where and how numbers are computed; chosen once at start-up (atento.runtime)."""

    device: str = "auto"  # auto (cuda when available) | cpu | cuda | cuda:N | mps
    precision: str = "auto"  # auto (bf16 where native, else fp32) | fp32 | bf16 | fp16 (CUDA)
    threads: int = 0  # torch threads on CPU; 0 = PyTorch's default
    malloc_tuning: bool = True  # CPU: keep large freed blocks in glibc's heap
    kernel_cache: int = 16  # CPU training: oneDNN + ideep kernel-cache caps; 0 = their defaults
    collective_timeout: float = 1800.0  # seconds a rank waits for the others (torchrun) before
    # it fails: longer than a validation takes, since the others wait while rank 0 validates
    # torch.compile of the training forward (atento.training.compiling): auto (where measured
    # to pay; off until then) | on | off; compile_scope: model (the whole forward) | layers
    compile: str = "auto"
    compile_scope: str = "model"
    # fp32 CPU training products of the linear layers (atento.kernels): auto (oneDNN where
    # measured faster on this machine, per shape) | plain (PyTorch's BLAS) | onednn
    linear_kernel: str = "auto"

    def validate(self, cfg: Config) -> None:
        device = self.device.split(":")[0] if self.device.startswith("cuda:") else self.device
        check(device in DEVICES, cfg, "runtime.device", ", ".join(DEVICES) + ", cuda:N")
        precisions = ", ".join(PRECISION_CHOICES)
        check(self.precision in PRECISION_CHOICES, cfg, "runtime.precision", precisions)
        check(self.threads >= 0, cfg, "runtime.threads", "0 or more")
        check(self.kernel_cache >= 0, cfg, "runtime.kernel_cache", "0 or more")
        check(self.collective_timeout > 0, cfg, "runtime.collective_timeout", "seconds > 0")
        check(self.compile in COMPILE_CHOICES, cfg, "runtime.compile", ", ".join(COMPILE_CHOICES))
        check(self.compile_scope in COMPILE_SCOPES, cfg, "runtime.compile_scope",
              ", ".join(COMPILE_SCOPES))  # fmt: skip
        check(self.linear_kernel in LINEAR_KERNELS, cfg, "runtime.linear_kernel",
              ", ".join(LINEAR_KERNELS))  # fmt: skip


@dataclass
class Config:
    """A whole config. `data` and `model` are the sections of `task` and `model.arch`: build one
    with `atento.config_io` (`config_from_dict`, `load_config`), which chooses them."""

    task: str = "translation"  # translation (more tasks register in atento.registry)
    data: Any = field(kw_only=True)  # the task's data section
    model: Any = field(kw_only=True)  # the section of model.arch
    train: TrainConfig = field(default_factory=TrainConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def validate(self) -> Config:
        """Check values that types alone cannot; raise AtentoError naming the key."""
        check(self.train.batch_tokens > 0, self, "train.batch_tokens", "a positive number")
        check(self.train.accum_steps >= 1, self, "train.accum_steps", "at least 1")
        check(self.train.schedule in ("inverse_sqrt", "cosine"), self, "train.schedule",
              "inverse_sqrt, cosine")  # fmt: skip
        if self.train.schedule == "cosine":
            check(self.train.max_steps > 0, self, "train.max_steps",
                  "a positive number with train.schedule=cosine")  # fmt: skip
            check(0 <= self.train.min_lr <= self.train.lr, self, "train.min_lr",
                  "a value in [0, train.lr]")  # fmt: skip
        check(0.0 < self.train.beta2 < 1.0, self, "train.beta2", "a value in (0, 1)")
        check(0.0 <= self.train.ema_decay < 1.0, self, "train.ema_decay", "a value in [0, 1)")
        try:
            check_beam(self.search.beam, self.search.nbest, self.search.alpha)
        except OptionError as exc:
            check(False, self, f"search.{exc.field}", exc.want)
        check(self.search.workers >= 1, self, "search.workers", "at least 1")
        check(self.search.min_len >= 0, self, "search.min_len", "0 or more")
        check(self.search.precision in ("run", *PRECISION_CHOICES), self, "search.precision",
              "run, " + ", ".join(PRECISION_CHOICES))  # fmt: skip
        for section in (self.data, self.model, self.runtime):
            if hasattr(section, "validate"):
                section.validate(self)
        return self


def check(ok: bool, cfg: Any, key: str, allowed: str) -> None:
    """Raise `config: KEY=VALUE is not valid (use ALLOWED)` unless `ok`."""
    if not ok:
        raise AtentoError(f"config: {key}={_get(cfg, key)!r} is not valid (use {allowed})")


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def config_to_dict(cfg: Config) -> dict:
    """The config as nested plain values (what `config_io.dump_config` writes as YAML)."""
    return asdict(cfg)
