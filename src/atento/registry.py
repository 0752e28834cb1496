"""The one place where architectures, tasks and commands are registered.

A new model family, task or subcommand is a new module that registers itself when imported,
plus one line in the matching tuple below; `config.py`, `models/factory.py`, the training loop
and `cli/main.py` stay as they are.

    @register_architecture("rnn", RNNConfig)
    def build_rnn(cfg: Config, **sizes: int) -> nn.Module: ...

    register_task("translation", TranslationTask)

The model section of a config is the dataclass of its `model.arch`, and the data section the
one of its `task`, so a key the chosen architecture or task does not use is an error that names
it, like any unknown key.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from atento.errors import AtentoError

if TYPE_CHECKING:
    from torch import nn

    from atento.config import Config
    from atento.tasks.base import Task

# Modules that register architectures and tasks when imported (in this order).
BUILTIN_MODULES = (
    "atento.models.factory",
    "atento.tasks.translation",
    "atento.models.text",
    "atento.tasks.lm",
    "atento.models.captioning",
    "atento.tasks.captioning",
    "atento.tasks.mlm",
    "atento.tasks.classify",
)
# Subcommand modules, in the order `atento --help` lists them; each has `register(sub)`.
COMMAND_MODULES = (
    "atento.cli.demo",
    "atento.cli.train",
    "atento.cli.translate",
    "atento.cli.evaluate",
    "atento.cli.attention",
    "atento.cli.score",
    "atento.cli.compare_length",
    "atento.cli.beam_sweep",
    "atento.cli.search_errors",
    "atento.cli.search_tree",
    "atento.cli.serve",
    "atento.cli.sample",
    "atento.cli.caption",
    "atento.cli.classify",
)

Builder = Callable[..., "nn.Module"]


@dataclass(frozen=True)
class Architecture:
    """A model family: the dataclass of its `model` section and the function that builds it.

    `build(cfg, **sizes)` gets the whole validated config and the vocabulary sizes the task
    reports (`src_vocab`, `tgt_vocab` for translation) and only builds: the config has already
    been validated (`config_cls.validate(cfg)`). `cpu_bf16=False` says that bf16 autocast does
    not speed this family up on a CPU (measured: benchmarks/README.md), so that
    `runtime.precision: auto` keeps fp32 there even where bf16 is native.
    """

    name: str
    config_cls: type
    build: Builder
    cpu_bf16: bool = True


_ARCHITECTURES: dict[str, Architecture] = {}
_TASKS: dict[str, type[Task]] = {}
_loaded = False


def register_architecture(
    name: str, config_cls: type, *, cpu_bf16: bool = True
) -> Callable[[Builder], Builder]:
    """Decorator: register `build` as the builder of `model.arch: name`."""

    def wrap(build: Builder) -> Builder:
        _ARCHITECTURES[name] = Architecture(name, config_cls, build, cpu_bf16)
        return build

    return wrap


def register_task(name: str, task_cls: type[Task]) -> type[Task]:
    """Register a task class under `task: name` (its `data_config` is the data section)."""
    _TASKS[name] = task_cls
    return task_cls


def load_builtins() -> None:
    """Import the built-in modules once (they register themselves)."""
    global _loaded
    if not _loaded:
        _loaded = True
        for module in BUILTIN_MODULES:
            importlib.import_module(module)


def architectures() -> dict[str, Architecture]:
    load_builtins()
    return dict(_ARCHITECTURES)


def architecture(name: str) -> Architecture:
    archs = architectures()
    if name not in archs:
        raise AtentoError(
            f"config: model.arch={name!r} is not valid (use {', '.join(sorted(archs))})"
        )
    return archs[name]


def tasks() -> dict[str, type[Task]]:
    load_builtins()
    return dict(_TASKS)


def task_class(name: str) -> type[Task]:
    known = tasks()
    if name not in known:
        raise AtentoError(f"config: task={name!r} is not valid (use {', '.join(sorted(known))})")
    return known[name]


def build_model(cfg: Config, **sizes: Any) -> nn.Module:
    """A freshly initialised model of `cfg.model.arch` (vocabulary sizes from the task)."""
    return architecture(cfg.model.arch).build(cfg, **sizes)
