"""The allocator setting is applied once and can be switched off."""

import sys

import pytest
import torch

from atento import registry, runtime


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_tune_allocator_is_idempotent(monkeypatch):
    monkeypatch.setattr(runtime, "_done", False)
    first = runtime.tune_allocator()
    assert runtime.tune_allocator() == first


def test_opt_out(monkeypatch):
    monkeypatch.setattr(runtime, "_done", False)
    monkeypatch.setenv("ATENTO_MALLOC_TUNING", "0")
    assert runtime.tune_allocator() is False


def test_native_bf16_is_a_bool():
    assert isinstance(runtime.native_bf16(), bool)


def _unset_kernel_cache(monkeypatch):
    """Unset for this test and restored after it (setenv first, so that undo knows it)."""
    for name in runtime.KERNEL_CACHES:
        monkeypatch.setenv(name, "1")
        monkeypatch.delenv(name)


def test_onednn_kernel_cache_is_capped_unless_set(monkeypatch):
    _unset_kernel_cache(monkeypatch)
    runtime.tune_allocator()  # decoding alone keeps oneDNN's default
    assert "ONEDNN_PRIMITIVE_CACHE_CAPACITY" not in runtime.os.environ
    assert runtime.cap_kernel_cache() is True
    assert runtime.os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "16"
    assert runtime.os.environ["LRU_CACHE_CAPACITY"] == "16"  # ideep's cache too
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "256")
    monkeypatch.setenv("LRU_CACHE_CAPACITY", "512")
    assert runtime.cap_kernel_cache() is False
    assert runtime.os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "256"
    assert runtime.os.environ["LRU_CACHE_CAPACITY"] == "512"


def test_one_preset_cache_keeps_its_value_the_other_is_capped(monkeypatch):
    _unset_kernel_cache(monkeypatch)
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64")
    assert runtime.cap_kernel_cache(0) is True  # 0 would crash ideep: at least 1
    assert runtime.os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "64"
    assert runtime.os.environ["LRU_CACHE_CAPACITY"] == "1"


def test_training_caps_the_kernel_cache_decoding_does_not(monkeypatch):
    from atento.config import RuntimeConfig

    cpu = runtime.Placement(torch.device("cpu"), "fp32")
    _unset_kernel_cache(monkeypatch)
    lines = runtime.apply_process_settings(RuntimeConfig(), cpu, training=False)
    assert "ONEDNN_PRIMITIVE_CACHE_CAPACITY" not in runtime.os.environ
    assert not any("oneDNN" in line for line in lines)
    lines = runtime.apply_process_settings(RuntimeConfig(kernel_cache=8), cpu, training=True)
    assert runtime.os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "8"
    assert runtime.os.environ["LRU_CACHE_CAPACITY"] == "8"
    assert any("oneDNN and ideep kernel caches capped at 8" in line for line in lines)


def test_auto_precision_is_bf16_only_where_native(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setenv("ATENTO_NATIVE_BF16", "1")
    assert runtime.resolve_precision("auto", cpu, key="runtime.precision")[0] == "bf16"
    monkeypatch.setenv("ATENTO_NATIVE_BF16", "0")
    precision, why = runtime.resolve_precision("auto", cpu, key="runtime.precision")
    assert precision == "fp32" and "ATENTO_NATIVE_BF16=0" in why
    monkeypatch.delenv("ATENTO_NATIVE_BF16")
    monkeypatch.setattr(runtime, "native_bf16", lambda: False)
    precision, why = runtime.resolve_precision("auto", cpu, key="runtime.precision")
    assert precision == "fp32" and "no AMX / AVX512-BF16" in why


def test_forced_bf16_on_a_cpu_without_it_runs_with_a_warning(monkeypatch, capsys):
    monkeypatch.setattr(runtime, "native_bf16", lambda: False)
    placement = runtime.choose_placement(_runtime(precision="bf16", device="cpu"))
    assert placement.precision == "bf16" and placement.dtype == torch.bfloat16
    err = capsys.readouterr().err
    assert "emulated" in err and "30x slower" in err and "runtime.precision=auto" in err


@pytest.mark.parametrize(
    "device,precision,message",
    [("cpu", "fp16", "runtime.precision=fp16 needs a CUDA device"),
     ("tpu", "auto", "runtime.device='tpu' is not valid")],
)  # fmt: skip
def test_impossible_device_or_precision_is_an_error(device, precision, message):
    from atento.errors import AtentoError

    with pytest.raises(AtentoError, match=message):
        runtime.choose_placement(_runtime(device=device, precision=precision))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_asked_where_absent_is_an_error():
    from atento.errors import AtentoError

    with pytest.raises(AtentoError, match="no CUDA device"):
        runtime.resolve_device("cuda")
    assert runtime.resolve_device("auto") == torch.device("cpu")


def test_autocast_follows_the_device_and_precision():
    cpu = torch.device("cpu")
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with runtime.Placement(cpu, "bf16").autocast():
        assert (a @ b).dtype == torch.bfloat16
    with runtime.Placement(cpu, "fp32").autocast():
        assert (a @ b).dtype == torch.float32
    assert not runtime.Placement(cpu, "bf16").grad_scaler().is_enabled()


def test_peak_memory_reports_the_host():
    peak = runtime.peak_memory_mb(torch.device("cpu"))
    assert peak["host"] > 0 and "device" not in peak


def test_importing_atento_changes_no_process_state():
    import subprocess
    import sys

    code = (
        "import os, torch; n = torch.get_num_threads(); "
        "import atento.cli.main, atento.training.loop, atento.rundir, atento.inference; "
        "assert torch.get_num_threads() == n; "
        "assert 'ONEDNN_PRIMITIVE_CACHE_CAPACITY' not in os.environ; "
        "assert 'LRU_CACHE_CAPACITY' not in os.environ; print('ok')"
    )
    env = {k: v for k, v in runtime.os.environ.items() if k not in runtime.KERNEL_CACHES}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "ok", out.stderr


def _runtime(**kw):
    from atento.config import RuntimeConfig

    return RuntimeConfig(**kw)


def test_auto_keeps_fp32_for_an_architecture_bf16_does_not_speed_up(monkeypatch):
    from atento.config_io import config_from_dict

    monkeypatch.setenv("ATENTO_NATIVE_BF16", "1")
    rnn = registry.placement_for(config_from_dict({"model": {"arch": "rnn"}}))
    transformer = registry.placement_for(config_from_dict({"model": {"arch": "transformer"}}))
    assert (rnn.precision, transformer.precision) == ("fp32", "bf16")
    assert rnn.with_precision("auto", key="--precision").precision == "fp32"
    assert rnn.with_precision("bf16", key="--precision").precision == "bf16"  # asked: honoured
