"""What a loaded run offers for decoding: one predictor per task, found through the registry.

    p = predictor_for(load_run("runs/x"))      # the run's task's predictor
    p.require("translate", command="translate")
    translator = p.translator(SearchOptions(beam=5), ViewOptions(attention=True))

A predictor names its `operations` (translate, sample, classify, caption, trace, score,
corpus, cross_attention, self_attention, image_attention) and the task-specific options it
`reads` (`--src`, `--split`, ...). The Python API (`atento.api`), the commands (`atento.cli`)
and the server (`atento.serve`) only parse, dispatch to these and format: a new task brings
its predictor and needs no edit there. An operation the run's task does not offer is an
`Unsupported` error naming the command and the tasks that offer it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from atento.errors import AtentoError

# task name -> its predictor class, filled by `atento.registry.register_task`
_PREDICTORS: dict[str, type[Predictor]] = {}


class Unsupported(AtentoError):
    """An operation the run's task does not offer (one line, naming who offers it)."""


def register(task: str, predictor: type[Predictor]) -> None:
    _PREDICTORS[task] = predictor


def offering(operation: str) -> list[str]:
    """The registered tasks whose predictor offers `operation`."""
    return [name for name, cls in _PREDICTORS.items() if operation in cls.operations]


class Predictor:
    """The decoding side of a task for one loaded run (module doc). The base offers nothing."""

    operations: ClassVar[frozenset[str]] = frozenset()
    reads: ClassVar[frozenset[str]] = frozenset()  # task options of evaluate and the analyses

    def __init__(self, run: Any) -> None:  # an `atento.rundir.LoadedRun`
        self.run = run

    @property
    def name(self) -> str:
        return self.run.path.name

    @property
    def task(self) -> str:
        return self.run.cfg.task

    def offers(self, operation: str) -> bool:
        return operation in self.operations

    def require(self, operation: str, *, command: str | None = None) -> Predictor:
        """self, or an `Unsupported` error: `RUN is a lm run; caption needs a caption run`."""
        if operation not in self.operations:
            tasks = offering(operation)
            want = " or ".join(tasks) if tasks else "another kind of"
            raise Unsupported(
                f"{self.run.path} is a {self.task} run; {command or operation} needs a {want} run"
            )
        return self

    def check_reads(self, given: dict[str, Any], *, spell=lambda k: "--" + k.replace("_", "-")):
        """A one-line error for a task-specific option this task does not read (it would be
        silently ignored): `given` maps every task option's name to its value (None or False
        = not given)."""
        for key, value in given.items():
            if value not in (None, False) and key not in self.reads:
                tasks = [t for t, cls in _PREDICTORS.items() if key in cls.reads]
                raise AtentoError(
                    f"{spell(key)} is for {' or '.join(tasks)} runs; {self.run.path} is a "
                    f"{self.task} run"
                )

    def info(self) -> dict:
        """A summary of the run: architecture, sizes, checkpoint step, search defaults."""
        cfg, model = self.run.cfg, self.run.model
        stack = next((m for m in model.modules() if hasattr(m, "n_layers")), model)
        info = {
            "name": self.name, "task": cfg.task, "arch": cfg.model.arch,
            "attention": getattr(cfg.model, "attention", None),
            "parameters": sum(p.numel() for p in model.parameters()), "step": self.run.step,
            **{f"{k}_vocab": tok.vocab_size for k, tok in self.run.tokenizers.items()},
            "search": {"beam": cfg.search.beam, "alpha": cfg.search.alpha,
                       "nbest": cfg.search.nbest},
            "device": str(self.run.placement.device), "precision": self.run.placement.precision,
            "layers": getattr(stack, "n_layers", None), "heads": getattr(stack, "heads", None),
            "operations": sorted(self.operations),
        }  # fmt: skip
        for key in ("src_lang", "tgt_lang"):
            if hasattr(cfg.data, key):
                info[key] = getattr(cfg.data, key)
        return info


def task_option_names() -> set[str]:
    """Every task-specific option any registered predictor reads."""
    return {key for cls in _PREDICTORS.values() for key in cls.reads}


def predictor_for(run: Any) -> Predictor:
    """The predictor of `run`'s task (its `Task.predictor` class)."""
    return type(run.task).predictor(run)
