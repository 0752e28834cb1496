"""Typed options of the decoding operations, validated in one place.

Every front end (the Python API, the command line, the HTTP server) builds these from what its
user wrote and hands them to a run's predictor (`atento.predictors`); a value out of range is
an `OptionError` that names its field as data, so each front end can say it in its own words:
the command line as `--max-new`, the server as the request item `max_new`.

    SearchOptions(beam=5, alpha=0.6).resolve(run_cfg.search)   # a validated SearchConfig
    SampleOptions(max_new=200, temperature=0.8, top_k=40).check()
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

from atento.errors import AtentoError

PRECISIONS = ("fp32", "bf16", "fp16")  # what a device can compute in; `auto` picks one
PRECISION_CHOICES = ("auto", *PRECISIONS)
COMPILE_CHOICES = ("auto", "on", "off")  # runtime.compile (atento.training.compiling)
COMPILE_SCOPES = ("model", "layers")  # runtime.compile_scope: what is compiled
LINEAR_KERNELS = ("auto", "plain", "onednn")  # runtime.linear_kernel (atento.kernels)


class OptionError(AtentoError):
    """A decoding option out of range: `field` (the option's name, or the request item at
    fault), what it must be, and the value given; `str()` reads `field must be WANT, got VALUE`.
    `text` instead is a message naming options as `{option}`. `spelled(spell)` writes each
    option the front end's way (`--max-new` on the command line, `max_new` in the API)."""

    def __init__(
        self, field: str, want: str = "", value: Any = None, *, text: str | None = None
    ) -> None:
        self.field, self.want, self.value = field, want, value
        self.text = text if text is not None else f"{{{field}}} must be {want}, got {value}"
        super().__init__(self.spelled())

    def spelled(self, spell: Callable[[str], str] = str) -> str:
        return self.text.format_map(_Spelled(spell))


class _Spelled(dict):
    def __init__(self, spell: Callable[[str], str]) -> None:
        super().__init__()
        self.spell = spell

    def __missing__(self, key: str) -> str:
        return self.spell(key)


def cli_spelling(key: str) -> str:
    """An option as the command line spells it: max_new -> --max-new."""
    return "--" + key.replace("_", "-")


def require(ok: bool, field: str, want: str, value: Any) -> None:
    """The one rule check: OptionError(field, want, value) unless `ok`."""
    if not ok:
        raise OptionError(field, want, value)


def check_beam(beam: int, nbest: int | None = None, alpha: float | None = None) -> None:
    """beam >= 1, 1 <= nbest <= beam, alpha >= 0: the search rules every path shares (config
    validation, the searchers, the API, the command line and the server)."""
    require(beam >= 1, "beam", "at least 1", beam)
    if nbest is not None:
        require(1 <= nbest <= beam, "nbest", f"between 1 and the beam width {beam}", nbest)
    if alpha is not None:
        require(alpha >= 0, "alpha", ">= 0", alpha)


@dataclass(frozen=True)
class SearchOptions:
    """Beam search / greedy settings of one call; None = the run's `search` config."""

    beam: int | None = None
    alpha: float | None = None
    nbest: int | None = None
    batch_size: int | None = None
    workers: int | None = None
    precision: str | None = None
    min_len: int | None = None

    @classmethod
    def of(cls, options: object) -> SearchOptions:
        """The search settings an options object carries (absent ones: the run's)."""
        return cls(**{f.name: getattr(options, f.name, None) for f in fields(cls)})

    def resolve(self, search: Any) -> Any:
        """The run's `SearchConfig` with these settings applied and checked. An unset nbest
        is the run's, clamped to the beam (a run's nbest 3 with --beam 1 gives 1)."""
        changes = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "precision"}
        resolved = replace(search, **{k: v for k, v in changes.items() if v is not None})
        if self.nbest is None:
            resolved = replace(resolved, nbest=min(resolved.nbest, max(resolved.beam, 1)))
        check_beam(resolved.beam, resolved.nbest, resolved.alpha)
        require(resolved.batch_size >= 1, "batch_size", "at least 1", resolved.batch_size)
        require(resolved.workers >= 1, "workers", "at least 1", resolved.workers)
        require(resolved.min_len >= 0, "min_len", "0 or more", resolved.min_len)
        if self.precision is not None:
            require(self.precision in PRECISION_CHOICES, "precision",
                    "one of " + ", ".join(PRECISION_CHOICES), self.precision)  # fmt: skip
        return resolved


@dataclass(frozen=True)
class SampleOptions:
    """Sampling settings: `max_new` tokens per sample, temperature (0 = greedy), top-k (0 =
    all), nucleus top-p, the seed (the same seed gives the same text), `num` samples per
    prompt, `keep_last` (a prompt beyond the context keeps its end), the KV cache."""

    max_new: int = 200
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 1
    num: int = 1
    keep_last: bool = False
    use_cache: bool = True

    def check(self) -> SampleOptions:
        require(self.max_new >= 1, "max_new", "at least 1", self.max_new)
        require(self.temperature >= 0, "temperature", ">= 0", self.temperature)
        require(self.top_k >= 0, "top_k", ">= 0", self.top_k)
        require(0 < self.top_p <= 1, "top_p", "in (0, 1]", self.top_p)
        require(1 <= self.num <= 1024, "num", "between 1 and 1024", self.num)
        return self


@dataclass(frozen=True)
class ViewOptions:
    """Which attention to return or draw: `layer` (negative counts from the top; None = the
    last) and `head` (None = the mean of heads); `attention` keeps it with each output."""

    attention: bool = False
    layer: int | None = None
    head: int | None = None

    def check(self) -> ViewOptions:
        if self.head is not None:
            require(self.head >= 0, "head", ">= 0", self.head)
        return self


NO_SEARCH = SearchOptions()  # the run's own search settings
NO_VIEW = ViewOptions()  # no attention kept
