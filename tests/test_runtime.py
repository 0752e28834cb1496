"""The allocator setting is applied once and can be switched off."""

import sys

import pytest

from atento import runtime


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


def test_onednn_kernel_cache_is_capped_unless_set(monkeypatch):
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    runtime.tune_allocator()  # decoding alone keeps oneDNN's default
    assert "ONEDNN_PRIMITIVE_CACHE_CAPACITY" not in runtime.os.environ
    runtime.cap_kernel_cache()
    assert runtime.os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "16"
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "256")
    runtime.cap_kernel_cache()
    assert runtime.os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "256"


def test_training_caps_the_kernel_cache(monkeypatch, tmp_path):
    from atento.config import load_config
    from atento.training.loop import Trainer
    from conftest import CONFIGS

    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    Trainer(load_config(CONFIGS / "toy_dates.yaml", ["train.threads=1"]), tmp_path / "r")
    assert runtime.os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "16"
