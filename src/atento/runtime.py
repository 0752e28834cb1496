"""Device and precision, chosen once at start-up, and the CPU-only process settings.

    placement = registry.placement_for(cfg)            # device + precision, with the reason
    with placement.autocast(): ...                     # autocast of the device's type
    apply_process_settings(cfg.runtime, placement, training=True)   # the command line only

`runtime.device: auto` is CUDA when available, else the CPU (MPS is used only when asked).
`runtime.precision: auto` is bf16 only where it is native: CUDA with bf16, or a CPU with AMX
or AVX512-BF16 (emulated bf16 made a Transformer train ~30x slower than fp32 on an AVX2-only
CPU); fp32 everywhere else. fp16 (with a gradient scaler) is CUDA-only.

Importing this module changes nothing in the process. `apply_process_settings` (called by the
command line, on CPU only) sets the thread count and two memory settings, each of which can be
switched off in the config's `runtime` section:
- glibc serves every allocation above 32 MB (the Transformer's (tokens, vocabulary) logits and
  their gradients) with a fresh `mmap` and returns it when freed, so each training step
  page-faulted through hundreds of megabytes; keeping large blocks in the heap made a step ~15 %
  faster on 2 cores (`runtime.malloc_tuning`, or ATENTO_MALLOC_TUNING=0);
- oneDNN caches a compiled bf16 kernel per shape, 1,024 by default; with a new batch shape at
  every training step a bf16 run grew to 13 GB, and a cap of 16 kept it at 3 GB at the same
  speed (`runtime.kernel_cache`, training only: decoding's shapes recur and it decoded ~12 %
  slower with the cap). PyTorch's ideep layer keeps a second per-shape cache (1,024 entries,
  LRU_CACHE_CAPACITY): with only oneDNN's capped a bf16 run still grew by ~0.4 GB a minute;
  the same cap on both keeps it flat (issue 24, benchmarks/README.md). An explicit
  ONEDNN_PRIMITIVE_CACHE_CAPACITY or LRU_CACHE_CAPACITY in the environment wins.
In training it also says which kernels run the linear layers' fp32 products
(`runtime.linear_kernel`, `atento.kernels.train_linear`; ATENTO_LINEAR_KERNEL overrides it).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import resource
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from atento.errors import AtentoError, warn
from atento.options import LINEAR_KERNELS

if TYPE_CHECKING:
    from atento.config import RuntimeConfig

_M_TRIM_THRESHOLD = -1  # mallopt parameters from glibc's malloc.h
_M_MMAP_MAX = -4
_done = False
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# bf16 emulated on an AVX2-only CPU: ~55 instead of ~1,700 target tokens/s (Transformer config)
EMULATED_BF16_SLOWDOWN = "about 30x slower than fp32"


def tune_allocator() -> bool:
    """Keep large freed blocks in the heap (glibc only; once per process). True when applied."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux") or os.environ.get("ATENTO_MALLOC_TUNING") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    _done = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))
    return _done


# the two caches of compiled kernels that PyTorch's oneDNN (mkldnn) path keeps, one entry per
# shape: oneDNN's own primitive cache and ideep's (PyTorch's oneDNN wrapper) LRU cache; both
# must be capped (issue 24: with one cap alone a bf16 run still grew)
KERNEL_CACHES = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")


def cap_kernel_cache(capacity: int = 16) -> bool:
    """Cap oneDNN's and ideep's caches of compiled kernels (before the first matrix product) at
    `capacity` >= 1 (LRU_CACHE_CAPACITY=0 crashes PyTorch); a cache whose variable the
    environment already sets keeps it. False when it sets both."""
    missing = [name for name in KERNEL_CACHES if name not in os.environ]
    for name in missing:
        os.environ[name] = str(max(1, capacity))
    return bool(missing)


def native_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products natively (AMX or AVX512-BF16).

    ATENTO_NATIVE_BF16=0 (or 1) overrides the detection: the test suite sets 0 so that `auto`
    means fp32 on every machine, and it lets a benchmark compare what `auto` would pick.
    """
    forced = os.environ.get("ATENTO_NATIVE_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def cpu_features() -> str:
    """The CPU's bf16-relevant features, for logs and benchmark reports."""
    cpu = getattr(torch, "cpu", None)
    names = {"amx": "_is_amx_tile_supported", "avx512_bf16": "_is_avx512_bf16_supported",
             "avx512": "_is_avx512_supported", "avx2": "_is_avx2_supported"}  # fmt: skip
    found = [k for k, fn in names.items() if bool(getattr(cpu, fn, lambda: False)())]
    return " ".join(found) or "none of amx/avx512/avx2"


def resolve_device(name: str) -> torch.device:
    """`auto` -> cuda when available, else cpu; an explicit device must exist (AtentoError)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kind = name.split(":")[0]
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise AtentoError(f"runtime.device={name}: no CUDA device is available here")
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise AtentoError(
                f"runtime.device={name}: only {torch.cuda.device_count()} CUDA device(s) here"
            )
        return device
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise AtentoError(f"runtime.device={name}: no MPS (Apple GPU) device is available")
        return torch.device("mps")
    raise AtentoError(f"runtime.device={name!r} is not valid (use auto, cpu, cuda, cuda:N, mps)")


def resolve_precision(
    name: str, device: torch.device, *, key: str, cpu_bf16: bool = True
) -> tuple[str, str]:
    """(precision, why) for `name` on `device`; AtentoError where it cannot work there.

    `cpu_bf16=False` (an architecture that bf16 does not speed up on a CPU, such as the RNN)
    makes `auto` fp32 on a CPU even where bf16 is native.
    """
    if device.type == "cuda":
        bf16_ok = torch.cuda.is_bf16_supported()
        if name == "auto":
            return ("bf16", "auto: CUDA with native bf16") if bf16_ok else (
                "fp32", "auto: this CUDA device has no bf16")  # fmt: skip
        if name == "bf16" and not bf16_ok:
            raise AtentoError(f"{key}=bf16: this CUDA device has no bf16 (use fp16 or fp32)")
        return name, f"{key}={name}"
    if name == "fp16":
        raise AtentoError(f"{key}=fp16 needs a CUDA device (use bf16 or fp32 on {device.type})")
    if device.type == "mps":
        return ("fp32", "auto: fp32 on MPS") if name == "auto" else (name, f"{key}={name}")
    native = native_bf16()
    if name == "auto":
        forced = os.environ.get("ATENTO_NATIVE_BF16") in ("0", "1")
        if forced:
            why = f"ATENTO_NATIVE_BF16={os.environ['ATENTO_NATIVE_BF16']}"
            return ("bf16" if native and cpu_bf16 else "fp32"), f"auto: {why}"
        if native and not cpu_bf16:
            return "fp32", "auto: bf16 is native here, but this architecture runs faster in fp32"
        if native:
            return "bf16", f"auto: this CPU computes bf16 natively ({cpu_features()})"
        return "fp32", f"auto: this CPU has no AMX / AVX512-BF16 ({cpu_features()})"
    if name == "bf16" and not native:
        warn(
            f"warning: {key}=bf16 on a CPU without AMX / AVX512-BF16: bf16 is emulated here, "
            f"{EMULATED_BF16_SLOWDOWN}; set {key}=auto to pick fp32"
        )
    return name, f"{key}={name}"


def grad_off() -> contextlib.AbstractContextManager:
    """No autograd while decoding: `torch.inference_mode` (no bookkeeping at all: ~20 % off a
    cached step at batch 1), except inside autocast, whose cache of weight casts does not work
    in inference mode (every product would cast its weight again at every step: bf16 sampling
    was slower than fp32), where `torch.no_grad`. Enter it inside the autocast."""
    if any(torch.is_autocast_enabled(kind) for kind in ("cpu", "cuda")):
        return torch.no_grad()
    return torch.inference_mode()


@dataclass(frozen=True)
class Placement:
    """Where tensors live and in which precision matrix products run."""

    device: torch.device
    precision: str  # fp32 | bf16 | fp16
    reason: str = ""
    cpu_bf16: bool = True  # whether bf16 speeds the model up on a CPU (what `auto` uses)

    @classmethod
    def cpu_fp32(cls) -> Placement:
        return cls(torch.device("cpu"), "fp32", "default")

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.precision]

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast of the device's type in this precision (nothing for fp32)."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A gradient scaler, enabled for fp16 only (bf16 and fp32 need none)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

    def describe(self) -> str:
        name = self.device.type
        if self.device.type == "cuda":
            name = f"{self.device} ({torch.cuda.get_device_name(self.device)})"
        return f"device {name}, precision {self.precision} ({self.reason})"

    def with_precision(self, name: str, *, key: str) -> Placement:
        """The same device with another precision setting (`run` keeps this one)."""
        if name == "run":
            return self
        precision, reason = resolve_precision(name, self.device, key=key, cpu_bf16=self.cpu_bf16)
        return Placement(self.device, precision, reason, self.cpu_bf16)


def choose_placement(
    runtime: RuntimeConfig, *, device: str | None = None, cpu_bf16: bool = True
) -> Placement:
    """Resolve `runtime.device` (or `device`) and `runtime.precision`; AtentoError when the
    machine cannot honour them. `cpu_bf16`: see `resolve_precision`."""
    dev = resolve_device(device or runtime.device)
    key = "runtime.precision"
    precision, reason = resolve_precision(runtime.precision, dev, key=key, cpu_bf16=cpu_bf16)
    return Placement(dev, precision, reason, cpu_bf16)


_linear_kernel = "plain"  # this process's runtime.linear_kernel (the command line sets it)


def set_linear_kernel(mode: str, source: str = "runtime.linear_kernel") -> None:
    """Which kernels run the linear layers' fp32 CPU training products
    (`atento.kernels.train_linear`): auto (oneDNN where measured faster on this machine, per
    shape), plain (PyTorch's own, bit-identical to F.linear) or onednn (wherever it can).
    Another value is an AtentoError naming `source`."""
    global _linear_kernel
    if mode not in LINEAR_KERNELS:
        raise AtentoError(f"{source} must be one of {', '.join(LINEAR_KERNELS)}, got {mode!r}")
    _linear_kernel = mode


def linear_kernel() -> str:
    return _linear_kernel


def apply_process_settings(
    runtime: RuntimeConfig, placement: Placement, *, training: bool, processes: int = 1
) -> list[str]:
    """CPU-only process settings (threads, allocator, kernel cache), once at start-up by the
    command line; returns one line per setting applied, for the run log. `processes` training
    processes on this machine share `runtime.threads` out among them."""
    if placement.device.type != "cpu":
        return []
    applied = []
    if runtime.threads > 0:
        threads = max(1, runtime.threads // processes)
        torch.set_num_threads(threads)
        share = f" ({runtime.threads} shared by {processes} processes)" if processes > 1 else ""
        applied.append(f"torch threads: {threads}{share}")
    if runtime.malloc_tuning and tune_allocator():
        applied.append("glibc malloc keeps large blocks in the heap (runtime.malloc_tuning)")
    if training and runtime.kernel_cache > 0 and cap_kernel_cache(runtime.kernel_cache):
        applied.append(
            f"oneDNN and ideep kernel caches capped at {runtime.kernel_cache} "
            "(runtime.kernel_cache)"
        )
    if training:
        env = os.environ.get("ATENTO_LINEAR_KERNEL")
        mode = env or runtime.linear_kernel
        set_linear_kernel(mode, source="ATENTO_LINEAR_KERNEL" if env else "runtime.linear_kernel")
        if mode != "plain" and placement.precision == "fp32":
            applied.append(
                f"fp32 linear layers' products: {mode} "
                "(runtime.linear_kernel; auto = oneDNN where measured faster, per shape)"
            )
    return applied


def peak_memory_mb(device: torch.device | None = None) -> dict[str, float]:
    """Peak resident host memory of this process and, on CUDA, peak allocated device memory."""
    peak = {"host": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if device is not None and device.type == "cuda":
        peak["device"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return peak
