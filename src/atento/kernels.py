"""Decoding's matrix products through a weight packed once for oneDNN, where that is faster.

`F.linear` multiplies by the plain (V, D) weight at every step. oneDNN's linear with the weight
reordered once into its own blocked layout (`torch.ops.mkldnn._reorder_linear_weight` and
`_linear_pointwise`, what inductor's freezing uses) skips the per-call work on the weight;
for the shapes of beam-5 Marian's output layer (160 x 512 -> 58,101) and of GPT-2's products
at batch 1 and 8 it was clearly faster on a 2-core AMD EPYC, in fp32 and in bf16
(`benchmarks/decode_kernels.py` measures each shape on the CPU at hand). Which kernel wins
depends on the CPU and on the number of rows, so nothing is assumed: the first call for a
weight, a precision and a size class of rows (1, 2-3, 4-7, ...) times both kernels (after one
warm-up call each, the best of 5 to 50 calls: more for short products, whose single timings are
noisy) and keeps the packed one only if it is at least 5 % faster. The choice is remembered on
disk (`$ATENTO_CACHE/kernels.json`, keyed by the CPU, its features, the torch version, the
thread count, the weight's shape, the precision and the size class), so that later runs on the
same machine take the same kernel and give the same outputs instead of measuring again under
whatever load they meet. The packed copy is made once per weight and precision, made again when
the weight changes in place (a training run's validation), and dropped while no size class uses
it.
Callers: the translation Transformer's and the language models' output layer in `step`, and
every product of the language models' lean cached step (`Block.step`), where the query, key
and value maps of the same input go through `decode_linears`: one product with their weights
concatenated (made at the first step, again when a weight changes in place; the stored
parameters keep their names and shapes), which streams the three weights faster than three
products do.

Numbers: under CPU bf16 autocast both kernels multiply bf16 by bf16 (autocast's own cast of
the weight, or the packed bf16 copy), so bf16 decoding stays within bf16's rounding. In fp32
oneDNN sums in another order than MKL: logits differ from `F.linear`'s by about 1e-6
(relative), so an exact near-tie can go the other way. `ATENTO_DECODE_KERNEL=plain` keeps
`F.linear` everywhere, unfused (bit-identical to the training forward); `packed` skips the
measurement.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from atento.runtime import cpu_features, linear_kernel

MARGIN = 0.95  # the packed kernel must take at most 95 % of F.linear's time
# the row count oneDNN lays a packed weight out for, at least: one layout serves every size
# class of rows, and one made for a single row ran GPT-2's products at 8 rows 1.6-1.8x slower
# than one made for 8 or 32, which are as fast at a single row (2-core EPYC, fp32)
PACK_ROWS = 32
_packed: dict[int, _Entry] = {}  # id(weight) -> its entry, dropped when the weight is freed
_lock = threading.Lock()
_remembered: dict[str, bool | str] | None = None  # kernels.json, read at the first measurement
_fused: dict[tuple[int, ...], _Fused] = {}  # ids of the fused weights -> their concatenation


class _Entry:
    """One weight's packed copies (per dtype) and the kernel chosen per (dtype, row class),
    valid while the weight's version counter stays `version`."""

    def __init__(self, version: tuple[int, int]) -> None:
        self.version = version
        self.packed: dict[torch.dtype, Tensor] = {}
        self.bias: dict[torch.dtype, Tensor | None] = {}
        self.choice: dict[tuple[torch.dtype, int], bool] = {}


class _Fused:
    """Several linear maps' weights and biases concatenated along the outputs, valid while
    their version counters stay `version`."""

    def __init__(self, version: tuple[int, ...], weights: list[Tensor], biases: list) -> None:
        self.version = version
        self.sizes = [w.size(0) for w in weights]
        self.bias = None
        with torch.inference_mode(False), torch.no_grad():  # a normal tensor: it has a version
            self.weight = torch.cat([w.detach() for w in weights])
            if any(b is not None for b in biases):
                self.bias = torch.cat([
                    b.detach() if b is not None else w.new_zeros(w.size(0))
                    for w, b in zip(weights, biases, strict=True)
                ])  # fmt: skip


def _available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _dtype(x: Tensor, weight: Tensor) -> torch.dtype | None:
    """The precision the product runs in: bf16 under CPU bf16 autocast, fp32 for fp32
    tensors, None for anything else (float64, another autocast dtype)."""
    if torch.is_autocast_enabled("cpu"):
        return torch.bfloat16 if torch.get_autocast_dtype("cpu") == torch.bfloat16 else None
    if x.dtype == weight.dtype == torch.float32:
        return torch.float32
    return None


def _best_time(fn) -> float:
    """The best of 5 to 50 timed calls (more for shorter ones, ~5 ms timed in all) after a
    warm-up one."""
    tick = time.perf_counter()
    fn()  # warm-up: oneDNN builds its kernel at the first call
    calls = min(50, max(5, int(0.005 / max(time.perf_counter() - tick, 1e-6))))
    best = float("inf")
    for _ in range(calls):
        tick = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - tick)
    return best


def _entry(weight: Tensor, bias: Tensor | None) -> _Entry:
    """The weight's entry (under `_lock`), new when the weight or bias changed in place."""
    version = (weight._version, -1 if bias is None else bias._version)
    entry = _packed.get(id(weight))
    if entry is None or entry.version != version:
        if entry is None:
            weakref.finalize(weight, _packed.pop, id(weight), None)
        entry = _packed[id(weight)] = _Entry(version)
    return entry


def _fast_dtype(x: Tensor, weight: Tensor, mode: str) -> torch.dtype | None:
    """The precision of a product that may take the packed kernel, None where `F.linear` is
    the only choice (plain mode, gradients, off the CPU, not (N, D), no oneDNN)."""
    if (mode == "plain" or torch.is_grad_enabled() or x.dim() != 2 or x.device.type != "cpu"
            or not _available()):  # fmt: skip
        return None
    return _dtype(x, weight)


def decode_linears(x: Tensor, layers: Sequence[torch.nn.Linear]) -> list[Tensor]:
    """x (N, D) through several linear maps of the same input (attention's query, key and
    value maps): one `decode_linear` with their weights concatenated, split into each map's
    (N, V_i) output (views). Where `decode_linear` would be `F.linear` (plain mode, gradients,
    ...) each map is its own `F.linear`, bit-identical to the training forward."""
    weights = [layer.weight for layer in layers]
    biases = [layer.bias for layer in layers]
    mode = os.environ.get("ATENTO_DECODE_KERNEL", "auto")
    if len(layers) < 2 or _fast_dtype(x, weights[0], mode) is None:
        return [F.linear(x, w, b) for w, b in zip(weights, biases, strict=True)]
    ids = tuple(id(w) for w in weights)
    version = tuple(-1 if t is None else t._version for t in (*weights, *biases))
    with _lock:
        fused = _fused.get(ids)
        if fused is None or fused.version != version:
            if fused is None:
                weakref.finalize(weights[0], _fused.pop, ids, None)
            fused = _fused[ids] = _Fused(version, weights, biases)
    return list(decode_linear(x, fused.weight, fused.bias).split(fused.sizes, dim=1))


def decode_linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x (N, D) -> x W^T + b (N, V) for a decoding step: `F.linear`, or the oneDNN-packed
    weight where it was measured faster for this weight, precision and number of rows
    (module doc). With gradients, off the CPU, or with ATENTO_DECODE_KERNEL=plain: `F.linear`.
    A packed copy is kept only while some size class of rows uses it."""
    mode = os.environ.get("ATENTO_DECODE_KERNEL", "auto")
    dtype = _fast_dtype(x, weight, mode)
    if dtype is None:
        return F.linear(x, weight, bias)
    x = x.contiguous()
    key = (dtype, x.size(0).bit_length())

    def fast() -> Tensor:
        return torch.ops.mkldnn._linear_pointwise(
            x.to(dtype), entry.packed[dtype], entry.bias[dtype], "none", [], ""
        )

    with _lock:
        entry = _entry(weight, bias)
        if key not in entry.choice:
            name = _choice_key(weight, key)
            known = True if mode == "packed" else _remembered_choices().get(name)
            if known is not False and dtype not in entry.packed:
                entry.packed[dtype] = torch.ops.mkldnn._reorder_linear_weight(
                    weight.detach().to(dtype), max(x.size(0), PACK_ROWS)
                )
                entry.bias[dtype] = None if bias is None else bias.detach().to(dtype)
            if known is None:  # measured once per machine (kernels.json), then remembered
                plain = _best_time(lambda: F.linear(x, weight, bias))
                known = _best_time(fast) <= MARGIN * plain
                _remember(name, known)
            entry.choice[key] = known
            in_use = any(used for (d, _), used in entry.choice.items() if d == dtype)
            if dtype in entry.packed and not in_use:
                del entry.packed[dtype], entry.bias[dtype]  # F.linear everywhere so far
        use_packed = entry.choice[key]
    return fast() if use_packed else F.linear(x, weight, bias)


def _choices_path() -> Path:
    from atento.data.store.keys import cache_root

    return cache_root() / "kernels.json"


@functools.cache
def _cpu() -> str:
    """The CPU's model name, family / model / stepping numbers and features with the torch
    version (read once per process). The numbers tell apart CPUs that share a name and flags
    (a virtual machine's "AMD EPYC" with AVX-512 was a Zen 4 one day and a Zen 5 the next,
    where the fastest fp32 weight-gradient kernel differed)."""
    model = platform.processor()
    fields: dict[str, str] = {}
    info = Path("/proc/cpuinfo")
    for line in info.read_text().splitlines() if info.is_file() else []:
        key, _, value = line.partition(":")
        key = key.strip()
        if not key and fields:
            break  # the first processor's block is enough
        fields.setdefault(key, value.strip())
    model = fields.get("model name", model)
    numbers = " ".join(
        f"{k} {fields[k]}" for k in ("cpu family", "model", "stepping") if k in fields
    )
    if numbers:
        model = f"{model} ({numbers})"
    return f"{model} | {cpu_features()} | torch {torch.__version__}"


def _machine() -> str:
    """What a measured choice depends on besides the shape: CPU, features, torch, threads."""
    return f"{_cpu()} | {torch.get_num_threads()} threads"


def _choice_key(weight: Tensor, key: tuple[torch.dtype, int]) -> str:
    dtype, size_class = key
    shape = "x".join(map(str, weight.shape))
    return f"{_machine()} | {shape} | {str(dtype).removeprefix('torch.')} | rows class {size_class}"


def _remembered_choices() -> dict[str, bool | str]:
    global _remembered
    if _remembered is None:
        try:
            _remembered = json.loads(_choices_path().read_text())
        except (OSError, ValueError):
            _remembered = {}
    return _remembered


def _remember(name: str, choice: bool | str) -> None:
    """Add a measured choice to kernels.json (written whole, then renamed); a cache that cannot
    be written only means measuring again in the next run."""
    choices = _remembered_choices()
    choices[name] = choice
    path = _choices_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(choices, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass


# ---------------------------------------------------------------------------------------------
# Training: the fp32 products of linear layers on oneDNN where that is faster (issue 24)

TRAIN_MIN_ROWS = 64  # smaller products keep F.linear without measuring
WGRAD_FORMS = ("mm", "dnn", "dnn_t")  # the weight gradient's three ways, `weight_grad`


class TrainKernels(NamedTuple):
    """Which kernel runs each of a linear layer's three training products, x (M, K) and the
    weight W (N, K): the forward x W^T and the input gradient gy W on oneDNN (True) or MKL
    (PyTorch's `mm`); the weight gradient gy^T x as `weight_grad` form `wgrad`."""

    forward: bool
    dgrad: bool
    wgrad: str = "mm"


PLAIN = TrainKernels(False, False, "mm")  # PyTorch's own products: F.linear
_train_choice: dict[tuple, TrainKernels] = {}  # (shape, rows class) -> its kernels
_measured = 0  # training-kernel choices timed by this process (`measurements`)


def _dnn(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x (M, K) W^T (+ b) on oneDNN; `weight` (N, K) may be a transposed view (no copy)."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


def weight_grad(grad: Tensor, x: Tensor, form: str, contiguous: bool = True) -> Tensor:
    """gy^T x (N, K) for gy (M, N) and x (M, K): PyTorch's `mm` ("mm"), or oneDNN's product
    with the (N, K) result as its output ("dnn") or the (K, N) one, then transposed ("dnn_t").
    Contiguous, or with `contiguous=False` possibly a transposed view (for a caller that only
    adds it to something). Which is fastest depends on the CPU and the shape: on a 2-core AMD
    EPYC (Zen 5; MKL runs its AVX2 code there) oneDNN's took 0.5-0.7x MKL's time at ~3,300
    rows, "dnn" for N < K and "dnn_t" for N > K (benchmarks/weight_grad_forms.py)."""
    if form == "dnn":
        return _dnn(grad.t(), x.t())
    if form == "dnn_t":
        product = _dnn(x.t(), grad.t()).t()
        return product.contiguous() if contiguous else product
    return grad.t() @ x


def _fixed_wgrad(n: int, k: int) -> str:
    """`runtime.linear_kernel=onednn`'s weight-gradient form, without measuring: the oneDNN
    product whose output has the fewer rows (what was faster where measured)."""
    return "dnn" if n < k else "dnn_t"


def measurements() -> int:
    """How many training-kernel choices this process has timed (not read from kernels.json):
    benchmarks leave the steps that measured out of their steady state."""
    return _measured


def _measure(name: str, forms: dict[bool | str, functools.partial]) -> bool | str:
    """The fastest of `forms` (the first is PyTorch's own): a oneDNN form is kept only where it
    takes <= MARGIN of the first's time. Remembered in kernels.json under `name`."""
    global _measured
    remembered = _remembered_choices()
    known = remembered.get(name)
    if known is None:
        _measured += 1
        times = {form: _best_time(fn) for form, fn in forms.items()}
        base, *others = forms
        best = min(others, key=times.__getitem__)
        known = best if times[best] <= MARGIN * times[base] else base
        _remember(name, known)
    return known


def _train_choices(rows: int, weight: Tensor) -> TrainKernels:
    """The kernels of `rows` x weight (N, K)'s three products: measured once per machine,
    shape and size class of rows (kernels.json), each form on random operands of the
    product's shape; oneDNN is kept where it takes <= MARGIN of MKL's time."""
    n, k = weight.shape
    if linear_kernel() == "onednn":
        return TrainKernels(True, True, _fixed_wgrad(n, k))
    key = (n, k, rows.bit_length())
    choice = _train_choice.get(key)
    if choice is not None:
        return choice
    with _lock:
        gen = torch.Generator().manual_seed(0)  # leaves the global generator alone
        w = torch.randn(n, k, generator=gen)
        x, gy = torch.randn(rows, k, generator=gen), torch.randn(rows, n, generator=gen)
        P = functools.partial

        def name(kind: str) -> str:
            return f"{_machine()} | train {kind} | {n}x{k} | float32 | rows class {key[2]}"

        picks = [
            # forward x W^T; input gradient gy W, i.e. W^T as the "weight" (a view)
            _measure(
                name(kind), {False: P(train_mm, a, view, False), True: P(train_mm, a, view, True)}
            )  # fmt: skip
            for kind, a, view in (("forward", x, w), ("dgrad", gy, w.t()))
        ]
        wgrad = _measure(name("wgrad"), {f: P(weight_grad, gy, x, f) for f in WGRAD_FORMS})
        choice = _train_choice[key] = TrainKernels(bool(picks[0]), bool(picks[1]), wgrad)
    return choice


class _TrainLinear(torch.autograd.Function):
    """y = x W^T + b with each of the three products on the kernel `kernels` names."""

    @staticmethod
    def forward(ctx, x, weight, bias, kernels):  # noqa: D102
        x2 = x.reshape(-1, x.size(-1))
        y = _dnn(x2, weight, bias) if kernels.forward else F.linear(x2, weight, bias)
        ctx.save_for_backward(x2, weight)
        ctx.kernels, ctx.with_bias, ctx.in_shape = kernels, bias is not None, x.shape
        return y.view(*x.shape[:-1], weight.size(0))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):  # noqa: D102
        x2, weight = ctx.saved_tensors
        g2 = grad.reshape(-1, grad.size(-1))
        need = ctx.needs_input_grad
        dx = dw = db = None
        if need[0]:
            dx = _dnn(g2, weight.t()) if ctx.kernels.dgrad else g2 @ weight
            dx = dx.view(ctx.in_shape)
        if need[1]:
            dw = weight_grad(g2, x2, ctx.kernels.wgrad)
        if ctx.with_bias and need[2]:
            db = g2.sum(0)
        return dx, dw, db, None


def train_kernels(x: Tensor, weight: Tensor) -> TrainKernels:
    """The kernels of x (..., K) times weight (N, K)^T's training products, as
    `runtime.linear_kernel` says (auto: as measured on this machine, per shape and size class
    of rows). `PLAIN`, i.e. PyTorch's own products, for plain mode, no gradients, autocast,
    off the CPU, not fp32, a compiled graph, or fewer than TRAIN_MIN_ROWS rows."""
    if (
        linear_kernel() == "plain"
        or not torch.is_grad_enabled()
        or x.device.type != "cpu"
        or x.dtype != torch.float32
        or weight.dtype != torch.float32
        or x.dim() < 2
        or torch.is_autocast_enabled("cpu")
        or torch.compiler.is_compiling()
        or not _available()
    ):
        return PLAIN
    rows = x.numel() // max(x.size(-1), 1)
    if rows < TRAIN_MIN_ROWS:
        return PLAIN
    return _train_choices(rows, weight)


def train_linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """`F.linear(x, weight, bias)` for a training forward, with its fp32 CPU products on oneDNN
    where `train_kernels` says so; `F.linear` itself where none is."""
    kernels = train_kernels(x, weight)
    if kernels == PLAIN:
        return F.linear(x, weight, bias)
    return _TrainLinear.apply(x, weight, bias, kernels)


def train_mm(x: Tensor, weight: Tensor, onednn: bool) -> Tensor:
    """x (M, K) W^T for weight (N, K), a transposed view allowed: oneDNN or PyTorch's `mm`
    (the fused output layer's products, which have their own backward)."""
    return _dnn(x, weight) if onednn else x @ weight.t()


class Linear(torch.nn.Linear):
    """`nn.Linear` whose training forward is `train_linear`: the same parameters (`weight`
    (out, in), `bias`), state dict and `isinstance(m, nn.Linear)`, so run directories and the
    Hugging Face import map onto it unchanged; outside fp32 CPU training steps it is
    `F.linear` itself."""

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return train_linear(x, self.weight, self.bias)
