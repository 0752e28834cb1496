"""Decoding's products through a oneDNN-packed weight (`atento.kernels`) equal F.linear."""

import json

import pytest
import torch
import torch.nn.functional as F

from atento import kernels
from atento.kernels import decode_linear, decode_linears

pytestmark = pytest.mark.skipif(not kernels._available(), reason="no oneDNN in this torch")


@pytest.fixture(autouse=True)
def _own_choices(monkeypatch, tmp_path):
    """Each test measures afresh: its own kernels.json, nothing remembered in memory."""
    monkeypatch.setenv("ATENTO_CACHE", str(tmp_path))
    monkeypatch.setattr(kernels, "_remembered", None)


def _layer(rows: int = 6, bias: bool = True):
    g = torch.Generator().manual_seed(rows)
    weight = torch.nn.Parameter(torch.randn(300, 48, generator=g) / 7)
    b = torch.nn.Parameter(torch.randn(300, generator=g)) if bias else None
    return torch.randn(rows, 48, generator=g), weight, b


@pytest.mark.parametrize("rows", [1, 6, 40])
def test_packed_weight_gives_f_linear_in_fp32(rows, monkeypatch):
    monkeypatch.setenv("ATENTO_DECODE_KERNEL", "packed")
    x, weight, bias = _layer(rows)
    with torch.no_grad():
        out = decode_linear(x, weight, bias)
        expected = F.linear(x, weight, bias)
    assert out.dtype == torch.float32 and out.shape == (rows, 300)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert kernels._packed[id(weight)].choice == {(torch.float32, rows.bit_length()): True}


def test_packed_weight_under_bf16_autocast_stays_within_bf16_rounding(monkeypatch):
    monkeypatch.setenv("ATENTO_DECODE_KERNEL", "packed")
    x, weight, bias = _layer()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = decode_linear(x, weight, bias)
        autocast = F.linear(x, weight, bias)
    assert out.dtype == autocast.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), autocast.float(), rtol=2e-2, atol=2e-2)
    assert torch.bfloat16 in kernels._packed[id(weight)].packed


def test_plain_and_gradients_take_f_linear_exactly(monkeypatch):
    x, weight, bias = _layer()
    monkeypatch.setenv("ATENTO_DECODE_KERNEL", "packed")
    out = decode_linear(x, weight, bias)  # gradients on: F.linear, differentiable
    assert out.requires_grad and torch.equal(out, F.linear(x, weight, bias))
    assert id(weight) not in kernels._packed
    monkeypatch.setenv("ATENTO_DECODE_KERNEL", "plain")
    with torch.no_grad():
        assert torch.equal(decode_linear(x, weight, bias), F.linear(x, weight, bias))
    assert id(weight) not in kernels._packed


def test_a_weight_changed_in_place_is_packed_again(monkeypatch):
    monkeypatch.setenv("ATENTO_DECODE_KERNEL", "packed")
    x, weight, _ = _layer()
    with torch.no_grad():
        decode_linear(x, weight)
        weight.mul_(2.0)  # an optimiser step between two validations
        out = decode_linear(x, weight)
        torch.testing.assert_close(out, F.linear(x, weight), rtol=1e-5, atol=1e-5)


def test_auto_measures_once_per_size_class_and_keeps_the_result(monkeypatch):
    monkeypatch.setenv("ATENTO_DECODE_KERNEL", "auto")
    x, weight, bias = _layer(rows=5)
    with torch.no_grad():
        first = decode_linear(x, weight, bias)
        choice = dict(kernels._packed[id(weight)].choice)
        assert list(choice) == [(torch.float32, 3)]  # 4..7 rows: one class
        second = decode_linear(x[:4], weight, bias)
    assert kernels._packed[id(weight)].choice == choice
    torch.testing.assert_close(first[:4], second, rtol=1e-5, atol=1e-5)


def test_a_packed_copy_that_no_size_class_uses_is_dropped(monkeypatch):
    monkeypatch.setenv("ATENTO_DECODE_KERNEL", "auto")
    monkeypatch.setattr(kernels, "MARGIN", 0.0)  # the packed kernel can never win
    x, weight, bias = _layer(rows=3)
    with torch.no_grad():
        out = decode_linear(x, weight, bias)
    assert torch.equal(out, F.linear(x, weight, bias))
    entry = kernels._packed[id(weight)]
    assert entry.choice == {(torch.float32, 2): False} and entry.packed == {}


def test_a_measured_choice_is_remembered_for_later_runs(monkeypatch, tmp_path):
    monkeypatch.setenv("ATENTO_DECODE_KERNEL", "auto")
    monkeypatch.setattr(kernels, "MARGIN", 10.0)  # the packed kernel always wins
    x, weight, bias = _layer(rows=3)
    with torch.no_grad():
        decode_linear(x, weight, bias)
    saved = json.loads((tmp_path / "kernels.json").read_text())
    assert list(saved.values()) == [True]
    assert next(iter(saved)).endswith("| 300x48 | float32 | rows class 2")
    # a later run (nothing in memory, another weight of the shape): the remembered kernel, no
    # measurement, so the same outputs whatever the machine's load
    monkeypatch.setattr(kernels, "_remembered", None)
    monkeypatch.setattr(kernels, "_best_time", lambda fn: pytest.fail("measured again"))
    x2, weight2, bias2 = _layer(rows=3)
    with torch.no_grad():
        out = decode_linear(x2, weight2, bias2)
    assert kernels._packed[id(weight2)].choice == {(torch.float32, 2): True}
    torch.testing.assert_close(out, F.linear(x2, weight2, bias2), rtol=1e-5, atol=1e-5)


def test_a_cache_that_cannot_be_written_only_means_measuring(monkeypatch, tmp_path):
    monkeypatch.setenv("ATENTO_DECODE_KERNEL", "auto")
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("ATENTO_CACHE", str(blocker / "below"))  # a folder under a file
    x, weight, bias = _layer(rows=2)
    with torch.no_grad():
        torch.testing.assert_close(decode_linear(x, weight, bias), F.linear(x, weight, bias),
                                   rtol=1e-5, atol=1e-5)  # fmt: skip
    assert (torch.float32, 2) in kernels._packed[id(weight)].choice


def _qkv(bias: tuple[bool, bool, bool] = (True, True, True)) -> list[torch.nn.Linear]:
    torch.manual_seed(3)
    return [torch.nn.Linear(48, n, bias=b) for n, b in zip((48, 48, 32), bias, strict=True)]


@pytest.mark.parametrize("bias", [(True, True, True), (False, False, False), (True, False, True)])
@pytest.mark.parametrize("rows", [1, 5])
def test_fused_maps_give_each_map_s_product(bias, rows, monkeypatch):
    monkeypatch.setenv("ATENTO_DECODE_KERNEL", "packed")
    layers, x = _qkv(bias), torch.randn(rows, 48)
    with torch.no_grad():
        outs = decode_linears(x, layers)
        assert [o.shape for o in outs] == [(rows, 48), (rows, 48), (rows, 32)]
        for out, layer in zip(outs, layers, strict=True):
            torch.testing.assert_close(out, layer(x), rtol=1e-5, atol=1e-5)


def test_fused_maps_follow_a_weight_changed_in_place(monkeypatch):
    monkeypatch.setenv("ATENTO_DECODE_KERNEL", "packed")
    layers, x = _qkv(), torch.randn(2, 48)
    with torch.no_grad():
        decode_linears(x, layers)
        layers[1].weight.mul_(-3.0)  # an optimiser step between two validations
        layers[2].bias.add_(1.0)
        outs = decode_linears(x, layers)
        for out, layer in zip(outs, layers, strict=True):
            torch.testing.assert_close(out, layer(x), rtol=1e-5, atol=1e-5)


def test_fused_maps_in_plain_mode_or_with_gradients_are_each_f_linear_exactly(monkeypatch):
    layers, x = _qkv(), torch.randn(3, 48)
    monkeypatch.setenv("ATENTO_DECODE_KERNEL", "packed")
    outs = decode_linears(x, layers)  # gradients on: unfused, differentiable
    assert all(o.requires_grad for o in outs)
    assert all(torch.equal(o, layer(x)) for o, layer in zip(outs, layers, strict=True))
    monkeypatch.setenv("ATENTO_DECODE_KERNEL", "plain")
    with torch.no_grad():
        outs = decode_linears(x, layers)
        assert all(torch.equal(o, layer(x)) for o, layer in zip(outs, layers, strict=True))
    assert not any(id(layers[0].weight) in ids for ids in kernels._fused)


def test_short_products_are_timed_more_often(monkeypatch):
    """Single timings of a short product are noisy: 5 calls for a slow one, up to 50 (a fake
    clock that each call advances, so the machine's load cannot change the count)."""
    clock = [0.0]
    monkeypatch.setattr(kernels.time, "perf_counter", lambda: clock[0])

    def product(seconds):
        def call():
            calls.append(1)
            clock[0] += seconds

        return call

    calls = []
    kernels._best_time(product(1e-6))  # ~instant: the most calls
    assert len(calls) == 1 + 50
    calls.clear()
    kernels._best_time(product(0.01))
    assert len(calls) == 1 + 5
