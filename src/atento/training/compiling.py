"""`runtime.compile`: torch.compile (inductor) of the training forward, with a clean fallback.

    compiler = StepCompiler.build(model, cfg.runtime, placement, arch="transformer", log=print)
    value = compiler.run(lambda: forward_and_backward())   # eager again if compiling fails
    compiler.summary()   # {"compile": "on", "compile_graphs": 3, "compile_seconds": 41.2, ...}

`runtime.compile: auto | on | off` (`runtime.compile_scope: model | layers`). `on` compiles the
model's forward (`model`: the whole teacher-forced forward, one graph up to the selection of
the real target positions, whose data-dependent size ends it) or each encoder / decoder layer
(`layers`), in place with `nn.Module.compile(dynamic=True)`: parameter names, shapes and state
dicts are unchanged (no `_orig_mod.` wrapper), so checkpoints and run directories are the
same whether a run compiled or not. Dynamic shapes: one graph serves every (B, T_src, T_tgt);
the batches' shapes vary at every step, and a graph per shape would recompile all run long
(`summary()` counts the graphs compiled and the seconds it took; the run's final JSON has them).

Fallback: where no C++ compiler is found (inductor needs one on a CPU), `on` logs one line and
trains without it; where compiling fails in a step (a dynamo / inductor / C++ error), the step
is run again eagerly, every module goes back to its plain forward, one line says why, and the
run goes on: never a crash. An error that the eager path raises too is the run's error.

`auto` compiles where it was measured to pay: `AUTO_ON` lists (device type, `model.arch`) pairs
from idle-machine measurements (benchmarks/README.md, "runtime.compile"), and a CPU also needs a
C++ compiler. It is empty until such a measurement shows a gain: `auto` means off today.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from torch import nn

from atento.options import COMPILE_CHOICES, COMPILE_SCOPES

if TYPE_CHECKING:
    from atento.config import RuntimeConfig
    from atento.runtime import Placement

# (device type, model.arch) where compiling was measured to make training faster (idle machine,
# benchmarks/compile_ab.py): what `runtime.compile: auto` turns on. Empty: auto = off.
AUTO_ON: set[tuple[str, str]] = set()
CXX_NAMES = ("g++", "c++", "clang++")
T = TypeVar("T")
__all__ = ["AUTO_ON", "COMPILE_CHOICES", "COMPILE_SCOPES", "StepCompiler", "resolve_compile"]


def cxx_compiler() -> str | None:
    """The C++ compiler inductor would use on a CPU ($CXX first), or None where none is found."""
    names = [os.environ["CXX"]] if os.environ.get("CXX") else []
    for name in [*names, *CXX_NAMES]:
        found = shutil.which(name)
        if found:
            return found
    return None


def resolve_compile(setting: str, device: torch.device, arch: str) -> tuple[bool, str]:
    """(compile?, why) for `runtime.compile` = `setting` when training `arch` on `device`."""
    if setting == "off":
        return False, "runtime.compile=off"
    if device.type == "mps":
        return False, f"runtime.compile={setting}: not on MPS"
    needs_cxx = device.type == "cpu"
    if setting == "auto":
        if (device.type, arch) not in AUTO_ON:
            return False, f"auto: not measured to pay for {arch} on {device.type}"
        if needs_cxx and cxx_compiler() is None:
            return False, "auto: no C++ compiler found"
        return True, f"auto: measured to pay for {arch} on {device.type}"
    if needs_cxx and cxx_compiler() is None:
        return False, ("runtime.compile=on, but no C++ compiler (g++, c++, clang++ or $CXX) "
                       "was found: training without it")  # fmt: skip
    return True, "runtime.compile=on"


def compile_targets(model: nn.Module, scope: str) -> list[nn.Module]:
    """The modules to compile: the model itself, or its layers (a Transformer's encoder and
    decoder layers; otherwise the model's direct submodules that hold parameters)."""
    if scope == "model":
        return [model]
    layers = [m for name in ("encoder_layers", "decoder_layers", "layers")
              for m in getattr(model, name, [])]  # fmt: skip
    if layers:
        return layers
    return [m for m in model.children() if any(True for _ in m.parameters())]


def _graphs() -> int:
    """Graphs dynamo compiled so far in this process (a counter read: cheap every step)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def _compile_seconds() -> float:
    """Seconds dynamo spent compiling so far in this process (its own timer)."""
    from torch._dynamo.utils import compile_times

    names, values = compile_times(repr="csv", aggregate=True)
    return float(dict(zip(names, values, strict=True)).get("_compile.compile_inner", 0.0))


def _allow_recompiles(modules: int) -> None:
    """Room in dynamo's per-code cache for one entry per compiled module: every module's
    compiled call shares the code of `Module._call_impl`, and past the limit (8) dynamo would
    quietly run the remaining layers of a deep model eagerly."""
    import torch._dynamo.config as dynamo

    dynamo.recompile_limit = max(dynamo.recompile_limit, 4 * modules)


class StepCompiler:
    """Compiles a model's training forward in place and runs steps with the eager fallback."""

    def __init__(self, model: nn.Module, *, enabled: bool, reason: str, scope: str = "model",
                 log: Callable[[str], Any] = print) -> None:  # fmt: skip
        self.model, self.scope, self.log = model, scope, log
        self.reason = reason
        self.enabled = enabled
        self.failed: str | None = None
        self.graphs = 0
        self.first_graphs: int | None = None  # graphs of the first step; later ones recompile
        self.step_seconds = 0.0  # wall time of the steps that compiled something
        self._base = (_graphs(), _compile_seconds()) if enabled else (0, 0.0)
        self.compiled: list[nn.Module] = []
        if enabled:
            self.compiled = compile_targets(model, scope)
            _allow_recompiles(len(self.compiled))
            for module in self.compiled:
                module.compile(dynamic=True)

    @classmethod
    def build(cls, model: nn.Module, runtime: RuntimeConfig, placement: Placement, *, arch: str,
              log: Callable[[str], Any] = print) -> StepCompiler:  # fmt: skip
        enabled, reason = resolve_compile(runtime.compile, placement.device, arch)
        return cls(model, enabled=enabled, reason=reason, scope=runtime.compile_scope, log=log)

    def describe(self) -> str:
        """The run log's line: on (scope) or off, and why."""
        state = f"on, scope {self.scope}, dynamic shapes" if self.enabled else "off"
        return f"runtime.compile: {state} ({self.reason})"

    def eager(self):
        """A context in which the compiled modules run their plain forward (validation and
        decoding: other shapes, no gradients; compiling them would cost, not pay)."""
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.compiler.set_stance("force_eager")

    def run(self, step: Callable[[], T]) -> T:
        """`step()`, compiled where enabled; a failure while compiled turns compiling off (one
        log line) and runs `step()` again eagerly (the step must start from a clean state:
        the trainer's zeroes the gradients first). Counts the graphs compiled: those of the
        first step, and the recompilations after it."""
        if not self.enabled:
            return step()
        before = self.graphs
        tick = time.perf_counter()
        try:
            out = step()
        except Exception as exc:  # noqa: BLE001 - any compiler error: the plain path decides
            self.disable(exc)
            return step()
        self.graphs = _graphs() - self._base[0]
        if self.graphs != before:
            self.step_seconds += time.perf_counter() - tick
        if self.first_graphs is None:
            self.first_graphs = self.graphs
        return out

    def disable(self, exc: BaseException) -> None:
        """Back to the plain forward for good, saying why in one line."""
        lines = str(exc).strip().splitlines()
        first = lines[0][:200] if lines else ""
        self.failed = f"{type(exc).__name__}: {first}".rstrip(": ")
        self.log(f"runtime.compile: compiling failed ({self.failed}); training goes on without it")
        for module in self.compiled:
            module._compiled_call_impl = None  # what nn.Module.compile set
        self.compiled, self.enabled = [], False
        self.reason = "compiling failed: plain PyTorch"

    def summary(self) -> dict[str, Any]:
        """The run's compile figures: whether on, graphs compiled (and how many of them after
        the first step: recompilations for new shapes or modes), seconds spent compiling
        (dynamo's count, forward graphs, and the wall time of the steps that compiled, which
        includes the backward's compilation), and the failure that turned it off, if any."""
        out: dict[str, Any] = {"compile": "on" if self.enabled else "off"}
        if self.enabled or self.failed:
            recompiles = self.graphs - (self.first_graphs or 0)
            out.update(compile_scope=self.scope, compile_graphs=self.graphs,
                       compile_recompiles=recompiles,
                       compile_seconds=round(_compile_seconds() - self._base[1], 1),
                       compile_step_seconds=round(self.step_seconds, 1))  # fmt: skip
        if self.failed:
            out["compile_failed"] = self.failed
        return out
