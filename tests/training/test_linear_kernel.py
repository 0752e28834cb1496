"""`runtime.linear_kernel`: fp32 training products of the linear layers on oneDNN
(`atento.kernels.train_linear`) give F.linear's values and gradients, train as the plain path
does, and are chosen by a measurement made once per machine and shape."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from atento import kernels
from atento.config_io import load_config
from atento.errors import AtentoError
from atento.kernels import PLAIN, WGRAD_FORMS, Linear, TrainKernels, train_kernels, weight_grad
from atento.runtime import apply_process_settings, linear_kernel, set_linear_kernel
from atento.training.fused_output import fused_output_loss
from atento.training.loop import Trainer
from conftest import CONFIGS

pytestmark = pytest.mark.skipif(not kernels._available(), reason="no oneDNN in this torch")


@pytest.fixture(autouse=True)
def _own_choices(monkeypatch, tmp_path):
    """Each test measures afresh (its own kernels.json, nothing in memory) and leaves the
    process in plain mode, as the suite runs."""
    monkeypatch.setenv("ATENTO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(kernels, "_remembered", None)
    monkeypatch.setattr(kernels, "_train_choice", {})
    yield
    set_linear_kernel("plain")


def _pair(shape=(5, 30, 48), out=40, bias=True, seed=0):
    """Two identical (Linear, input) pairs, one for each path."""
    g = torch.Generator().manual_seed(seed)
    layer = Linear(shape[-1], out, bias=bias)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(out, shape[-1], generator=g) / 7)
        if bias:
            layer.bias.copy_(torch.randn(out, generator=g))
    x = torch.randn(*shape, generator=g)
    twin = torch.nn.Linear(shape[-1], out, bias=bias)
    twin.load_state_dict(layer.state_dict())
    return (layer, x.clone().requires_grad_()), (twin, x.clone().requires_grad_())


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("out", [40, 56])  # fewer / more outputs than inputs: both wgrad forms
def test_onednn_values_and_gradients_equal_f_linear(bias, transposed, out):
    set_linear_kernel("onednn")
    (layer, x), (twin, x2) = _pair(bias=bias, out=out)
    xs, x2s = (x.transpose(0, 1), x2.transpose(0, 1)) if transposed else (x, x2)  # strided
    assert train_kernels(xs, layer.weight) == TrainKernels(
        True, True, "dnn" if out < 48 else "dnn_t"
    )
    y, y2 = layer(xs), twin(x2s)
    assert type(y.grad_fn).__name__ == "_TrainLinearBackward"
    torch.testing.assert_close(y, y2, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(y)
    (y * g).sum().backward()
    (y2 * g).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer.weight.grad, twin.weight.grad, rtol=1e-5, atol=1e-5)
    if bias:
        torch.testing.assert_close(layer.bias.grad, twin.bias.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("form", WGRAD_FORMS)
def test_every_weight_gradient_form_is_gy_t_x(form):
    """gy^T x (N, K), contiguous, from contiguous and strided operands, for N < K and N > K."""
    g = torch.Generator().manual_seed(1)
    for n, k in ((24, 40), (40, 24)):
        gy, x = torch.randn(70, n, generator=g), torch.randn(70, k, generator=g)
        for a, b in ((gy, x), (gy.t().contiguous().t(), x[:, None].expand(70, 2, k)[:, 0])):
            dw = weight_grad(a, b, form)
            assert dw.shape == (n, k) and dw.is_contiguous()
            torch.testing.assert_close(dw, gy.t() @ x, rtol=1e-5, atol=1e-5)


def test_frozen_weight_and_input_without_gradient():
    set_linear_kernel("onednn")
    (layer, x), (twin, x2) = _pair()
    layer.weight.requires_grad_(False)
    twin.weight.requires_grad_(False)
    layer(x).sum().backward()
    twin(x2).sum().backward()
    assert layer.weight.grad is None
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-5, atol=1e-5)
    (layer, x), (twin, _) = _pair()
    layer(x.detach()).sum().backward()  # only the weight and bias need gradients
    assert layer.weight.grad is not None and layer.bias.grad is not None


def test_f_linear_itself_where_the_kernel_does_not_apply(monkeypatch):
    """Plain mode, no gradients, autocast, fewer rows than TRAIN_MIN_ROWS, float64: the same
    tensor F.linear gives, with F.linear's own backward."""
    (layer, x), _ = _pair()
    expected = F.linear(x, layer.weight, layer.bias)
    set_linear_kernel("plain")
    assert torch.equal(layer(x), expected) and train_kernels(x, layer.weight) == PLAIN
    set_linear_kernel("onednn")
    with torch.no_grad():
        assert torch.equal(layer(x), expected)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert train_kernels(x, layer.weight) == PLAIN
    assert train_kernels(x[:1, :10], layer.weight) == PLAIN  # 10 rows
    assert train_kernels(x.double(), layer.weight.double()) == PLAIN
    small = layer(x[:1, :10])
    assert torch.equal(small, F.linear(x[:1, :10], layer.weight, layer.bias))
    assert "TrainLinear" not in type(small.grad_fn).__name__


def test_auto_measures_once_and_remembers_the_choice(monkeypatch, tmp_path):
    set_linear_kernel("auto")
    (layer, x), _ = _pair(shape=(4, 50, 48))  # 200 rows: size class 8
    rng = torch.get_rng_state()
    timed = kernels.measurements()
    choice = train_kernels(x, layer.weight)
    assert kernels.measurements() == timed + 3  # forward, input and weight gradient
    assert torch.equal(torch.get_rng_state(), rng)  # measured on its own generator
    saved = json.loads(Path(tmp_path / "cache" / "kernels.json").read_text())
    mine = {k.split(" | train ")[1]: v for k, v in saved.items() if " | train " in k}
    assert mine == {"forward | 40x48 | float32 | rows class 8": choice.forward,
                    "dgrad | 40x48 | float32 | rows class 8": choice.dgrad,
                    "wgrad | 40x48 | float32 | rows class 8": choice.wgrad}  # fmt: skip
    assert choice.wgrad in WGRAD_FORMS
    # a later process takes the remembered choice without timing anything
    monkeypatch.setattr(kernels, "_remembered", None)
    monkeypatch.setattr(kernels, "_train_choice", {})
    monkeypatch.setattr(kernels, "_best_time", lambda fn: pytest.fail("measured again"))
    assert train_kernels(x, layer.weight) == choice
    assert train_kernels(x[:, :40], layer.weight) == choice  # 160 rows: the same class
    assert kernels.measurements() == timed + 3  # read back, not timed


def test_fused_output_loss_on_onednn_equals_the_plain_products():
    g = torch.Generator().manual_seed(3)
    h = torch.randn(300, 32, generator=g)
    w = torch.randn(500, 32, generator=g) / 5
    t = torch.randint(0, 500, (300,), generator=g)
    results = []
    for mode in ("plain", "onednn"):
        set_linear_kernel(mode)
        hh, ww = h.clone().requires_grad_(), w.clone().requires_grad_()
        loss = fused_output_loss(hh, ww, t, label_smoothing=0.1, chunk=128)
        loss.backward()
        results.append((loss, hh.grad, ww.grad))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def _trainer(tmp_path, config: str, name: str) -> Trainer:
    over = ["data.n_train=64", "runtime.precision=fp32"]
    return Trainer(load_config(CONFIGS / config, over), tmp_path / name, progress=False)


def _losses(trainer: Trainer, steps: int) -> list[float]:
    return [
        trainer.train_step(trainer.task.collate(list(range(10 * (i % 6), 10 * (i % 6) + 10))))[0]
        for i in range(steps)
    ]


@pytest.mark.parametrize("config", ["toy_transformer.yaml", "toy_dates.yaml"])
def test_fifty_training_steps_agree_with_the_plain_path(config, tmp_path, monkeypatch):
    """The same data and dropout masks (the kernels draw no random numbers); oneDNN sums each
    product in another order than MKL (~1e-7 relative per value), which Adam carries on, so
    the 50 losses agree to 1e-4 relative, not bit for bit."""
    monkeypatch.setattr(kernels, "TRAIN_MIN_ROWS", 1)  # every product of the tiny model
    set_linear_kernel("plain")
    plain = _losses(_trainer(tmp_path, config, "plain"), 50)
    set_linear_kernel("onednn")
    trainer = _trainer(tmp_path, config, "onednn")
    used, forms = [], set()
    real, real_wgrad = kernels._TrainLinear.apply, kernels.weight_grad
    monkeypatch.setattr(kernels._TrainLinear, "apply", lambda *a: used.append(1) or real(*a))
    monkeypatch.setattr(kernels, "weight_grad", lambda g, x, f: forms.add(f) or real_wgrad(g, x, f))
    assert _losses(trainer, 50) == pytest.approx(plain, rel=1e-4)
    assert used and forms <= {"dnn", "dnn_t"} and forms  # the products did go through oneDNN
    assert plain[-1] < plain[0]


def test_state_dict_and_module_type_are_nn_linear_s():
    layer = Linear(8, 4)
    assert isinstance(layer, torch.nn.Linear)
    assert list(layer.state_dict()) == list(torch.nn.Linear(8, 4).state_dict())


def test_config_and_environment_choose_the_mode(monkeypatch):
    cfg = load_config(CONFIGS / "toy_transformer.yaml", ["runtime.linear_kernel=onednn"])
    from atento.registry import placement_for

    placement = placement_for(cfg)
    monkeypatch.delenv("ATENTO_LINEAR_KERNEL", raising=False)
    lines = apply_process_settings(cfg.runtime, placement, training=True)
    assert linear_kernel() == "onednn" and any("linear_kernel" in x for x in lines)
    monkeypatch.setenv("ATENTO_LINEAR_KERNEL", "plain")
    apply_process_settings(cfg.runtime, placement, training=True)
    assert linear_kernel() == "plain"
    monkeypatch.setenv("ATENTO_LINEAR_KERNEL", "fast")
    with pytest.raises(AtentoError, match="ATENTO_LINEAR_KERNEL must be one of auto, plain"):
        apply_process_settings(cfg.runtime, placement, training=True)
    with pytest.raises(Exception, match="runtime.linear_kernel"):
        load_config(CONFIGS / "toy_transformer.yaml", ["runtime.linear_kernel=mkl"])


def test_measured_choices_are_keyed_by_the_cpus_numbers_too():
    """Two CPUs with one model name and the same flags (a VM's "AMD EPYC", Zen 4 or Zen 5) get
    separate kernels.json entries: the key holds the family / model / stepping numbers."""
    info = Path("/proc/cpuinfo")
    text = info.read_text() if info.is_file() else ""
    key = kernels._cpu.__wrapped__()
    assert f"torch {torch.__version__}" in key
    if "cpu family" in text:
        family = next(x for x in text.splitlines() if x.startswith("cpu family"))
        assert f"(cpu family {family.split(':', 1)[1].strip()} model " in key
