"""The weight average: the update rule by hand, swapping in and out, checkpoints and resuming."""

import pytest
import torch
from torch import nn

from atento.checkpoints import BEST, LAST, load_checkpoint
from atento.config_io import load_config
from atento.rundir import load_run
from atento.training.ema import WeightAverage, ema_decay_at
from atento.training.loop import Trainer
from conftest import CONFIGS

BASE = ["runtime.threads=1", "train.valid_every=6", "data.n_train=200", "train.batch_tokens=300"]


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(5, 3)
        self.out = nn.Linear(3, 5, bias=False)
        self.out.weight = self.embed.weight  # one parameter under two names
        self.register_buffer("fixed", torch.arange(3.0))


def test_decay_ramp():
    assert ema_decay_at(0.999, 1) == pytest.approx(2 / 11)
    assert ema_decay_at(0.999, 90) == pytest.approx(91 / 100)
    assert ema_decay_at(0.999, 10**6) == 0.999


def test_update_matches_the_formula_by_hand():
    model = Tied()
    w0 = model.embed.weight.detach().clone()
    avg = WeightAverage(model, decay=0.5)
    w1, w2 = torch.randn(5, 3), torch.randn(5, 3)
    with torch.no_grad():
        model.embed.weight.copy_(w1)
    avg.update()  # d = 2/11
    with torch.no_grad():
        model.embed.weight.copy_(w2)
    avg.update()  # d = min(0.5, 3/12) = 0.25
    d1, d2 = 2 / 11, 0.25
    expected = d2 * (d1 * w0 + (1 - d1) * w1) + (1 - d2) * w2
    state = avg.averaged_state_dict()
    torch.testing.assert_close(state["embed.weight"], expected)
    torch.testing.assert_close(state["out.weight"], expected)  # the tied name too
    assert torch.equal(state["fixed"], torch.arange(3.0))  # buffers pass through
    assert torch.equal(model.embed.weight, w2)  # the raw weights are untouched


def test_applied_swaps_in_and_restores_exactly():
    model = Tied()
    avg = WeightAverage(model, decay=0.9)
    raw = torch.randn(5, 3)
    with torch.no_grad():
        model.embed.weight.copy_(raw)
    avg.update()
    averaged = avg.averaged_state_dict()["embed.weight"]
    with avg.applied():
        assert torch.equal(model.embed.weight, averaged)
        assert model.out.weight is model.embed.weight
    assert torch.equal(model.embed.weight, raw)


def test_training_with_an_average_checkpoints_resumes_and_translates(tmp_path):
    args = [*BASE, "train.ema_decay=0.9"]
    full = load_config(CONFIGS / "toy_dates.yaml", [*args, "train.max_steps=16"])
    Trainer(full, tmp_path / "full", progress=False).fit()
    half = load_config(CONFIGS / "toy_dates.yaml", [*args, "train.max_steps=9"])
    Trainer(half, tmp_path / "split", progress=False).fit()
    Trainer(full, tmp_path / "split", resume=True, progress=False).fit()

    a = load_checkpoint(tmp_path / "full" / LAST, training=True)
    b = load_checkpoint(tmp_path / "split" / LAST, training=True)
    for key in ("model", "train_model"):  # averaged and raw weights both resume exactly
        for name in getattr(a, key):
            torch.testing.assert_close(getattr(a, key)[name], getattr(b, key)[name], rtol=0,
                                       atol=0, msg=name)  # fmt: skip
    assert b.training["ema_updates"] == 16
    name = next(k for k in a.model if k.endswith("weight"))
    assert not torch.equal(a.model[name], a.train_model[name])
    # the best checkpoint and translation use the averaged weights
    best = load_checkpoint(tmp_path / "full" / BEST, training=True)
    assert best.model and best.train_model is None and best.training is None
    loaded = load_run(tmp_path / "full", which="last")
    state = loaded.model.state_dict()
    torch.testing.assert_close(state[name], a.model[name], rtol=0, atol=0)


def test_no_average_by_default(tmp_path):
    cfg = load_config(CONFIGS / "toy_dates.yaml", [*BASE, "train.max_steps=3"])
    Trainer(cfg, tmp_path / "r", progress=False).fit()
    assert load_checkpoint(tmp_path / "r" / LAST, training=True).train_model is None


def test_ema_gain_script_compares_both_weights(tmp_path):
    import json
    import subprocess
    import sys

    from conftest import ROOT

    cfg = load_config(
        CONFIGS / "toy_dates.yaml", [*BASE, "train.max_steps=8", "train.ema_decay=0.9"]
    )
    Trainer(cfg, tmp_path / "r", progress=False).fit()
    src, ref = tmp_path / "src.txt", tmp_path / "ref.txt"
    src.write_text("9 April 1974\n1. Dez. 1960\n")
    ref.write_text("1974-04-09\n1960-12-01\n")
    script = ROOT / "experiments" / "ema_gain.py"
    args = [sys.executable, str(script), str(tmp_path / "r"), "--src", str(src), "--ref", str(ref)]
    out = subprocess.run([*args, "--beam", "2"], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    assert report["step"] == 8 and report["beam"] == 2
    assert set(report["average"]) == set(report["raw"]) == {"bleu", "chrf"}


def test_tied_weights_stay_one_tensor_in_the_average():
    avg = WeightAverage(Tied(), decay=0.9)
    state = avg.averaged_state_dict()
    assert state["embed.weight"] is state["out.weight"]  # stored once in a checkpoint
