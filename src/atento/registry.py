"""The tables of architectures and tasks that configs name (`model.arch`, `task`).

The built-in ones are listed in `atento.components`, read the first time a name is looked up;
the modules that define them do not import this one. A program adds its own (a test, a plugin)
with

    @register_architecture("my_arch", MyConfig)
    def build_my_arch(cfg: Config, **sizes: int) -> nn.Module: ...

    register_task("my_task", MyTask)

The model section of a config is the dataclass of its `model.arch`, and the data section the
one of its `task`, so a key the chosen architecture or task does not use is an error that names
it, like any unknown key. The subcommands are listed in `atento.cli.commands`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from atento.errors import AtentoError
from atento.predictors.base import register as register_predictor

if TYPE_CHECKING:
    from torch import nn

    from atento.config import Config
    from atento.runtime import Placement
    from atento.tasks.base import Task

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
    """Register a task class under `task: name` (its `data_config` is the data section, its
    `predictor` the decoding side: `atento.predictors.base`)."""
    _TASKS[name] = task_cls
    register_predictor(name, task_cls.predictor)
    return task_cls


def load_builtins() -> None:
    """Add the built-in architectures and tasks (`atento.components`) once; a name the program
    registered itself keeps its own."""
    global _loaded
    if not _loaded:
        _loaded = True
        from atento.components import ARCHITECTURES, TASKS

        for name, (config_cls, build, cpu_bf16) in ARCHITECTURES.items():
            _ARCHITECTURES.setdefault(name, Architecture(name, config_cls, build, cpu_bf16))
        for name, task_cls in TASKS.items():
            _TASKS.setdefault(name, task_cls)
            register_predictor(name, _TASKS[name].predictor)


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


def placement_for(cfg: Config, *, device: str | None = None) -> Placement:
    """`runtime.choose_placement` for a whole config: its architecture says whether bf16 pays
    on a CPU."""
    from atento.runtime import choose_placement

    cpu_bf16 = architecture(cfg.model.arch).cpu_bf16
    return choose_placement(cfg.runtime, device=device, cpu_bf16=cpu_bf16)
