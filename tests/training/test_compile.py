"""`runtime.compile` (atento.training.compiling): the switch, the fallback, and parity of a
compiled training run with the plain one (the only test here that compiles: tens of seconds)."""

import pytest
import torch
from torch import nn

from atento.checkpoints import LAST, load_checkpoint
from atento.config_io import load_config
from atento.errors import AtentoError
from atento.training import compiling
from atento.training.compiling import StepCompiler, compile_targets, resolve_compile
from atento.training.loop import Trainer
from conftest import CONFIGS

CPU = torch.device("cpu")


def _config(setting: str, *more: str):
    over = ["data.n_train=64", "runtime.precision=fp32", "runtime.threads=1",
            "model.dropout=0", f"runtime.compile={setting}", *more]  # fmt: skip
    return load_config(CONFIGS / "toy_transformer.yaml", over)


def _losses(trainer: Trainer, steps: int) -> list[float]:
    """The first `steps` (<= 6) losses on fixed batches of 10 pairs (shapes vary batch to batch)."""
    batches = [trainer.task.collate(list(range(10 * i, 10 * i + 10))) for i in range(steps)]
    return [trainer.train_step(batch)[0] for batch in batches]


def test_config_reads_on_off_and_rejects_others(tmp_path):
    assert _config("on").runtime.compile == "on"  # YAML reads a bare `on` as true
    assert _config("off").runtime.compile == "off"
    assert _config("auto", "runtime.compile_scope=layers").runtime.compile_scope == "layers"
    with pytest.raises(AtentoError, match="runtime.compile=.*auto, on, off"):
        _config("always")
    with pytest.raises(AtentoError, match="runtime.compile_scope"):
        _config("on", "runtime.compile_scope=graph")


def test_auto_is_off_until_measured_and_needs_a_compiler(monkeypatch):
    assert resolve_compile("off", CPU, "transformer")[0] is False
    assert resolve_compile("auto", CPU, "transformer") == (
        False, "auto: not measured to pay for transformer on cpu")  # fmt: skip
    monkeypatch.setattr(compiling, "AUTO_ON", {("cpu", "transformer")})
    monkeypatch.setattr(compiling, "cxx_compiler", lambda: "/usr/bin/g++")
    assert resolve_compile("auto", CPU, "transformer")[0] is True
    assert resolve_compile("auto", CPU, "rnn")[0] is False
    monkeypatch.setattr(compiling, "cxx_compiler", lambda: None)
    assert resolve_compile("auto", CPU, "transformer") == (False, "auto: no C++ compiler found")
    on, why = resolve_compile("on", CPU, "transformer")
    assert on is False and "no C++ compiler" in why


def test_compiler_is_found_from_cxx(monkeypatch, tmp_path):
    fake = tmp_path / "my-cxx"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CXX", str(fake))
    assert compiling.cxx_compiler() == str(fake)


def test_layers_scope_targets_the_transformer_layers():
    from atento.models.rnn import RNNSeq2Seq
    from atento.models.transformer import TransformerSeq2Seq

    tf = TransformerSeq2Seq(src_vocab=20, tgt_vocab=20, d_model=16, heads=2, ff_size=32, layers=2)
    assert compile_targets(tf, "layers") == [*tf.encoder_layers, *tf.decoder_layers]
    assert compile_targets(tf, "model") == [tf]
    rnn = RNNSeq2Seq(src_vocab=20, tgt_vocab=20, emb_size=16, hidden_size=16, enc_layers=1,
                     dec_layers=1, cell="gru", dropout=0.0, attention="additive",
                     input_feeding=False, max_src_len=20)  # fmt: skip
    assert compile_targets(rnn, "layers") == [rnn.encoder, rnn.decoder]


def test_a_failing_compile_falls_back_to_the_plain_path(tmp_path, monkeypatch):
    """Compiling that fails in the first step: one log line, the step runs eagerly, the run
    goes on with the plain forward and trains exactly as a run without compiling."""

    def broken(self, **kwargs):
        def fail(*args, **kw):
            raise RuntimeError("C++ compile error\ng++: fatal error: no input files")

        self._compiled_call_impl = fail

    monkeypatch.setattr(compiling, "cxx_compiler", lambda: "/usr/bin/g++")
    plain = _losses(Trainer(_config("off"), tmp_path / "plain", progress=False), 3)
    monkeypatch.setattr(nn.Module, "compile", broken)
    logged: list[str] = []
    trainer = Trainer(_config("on", "runtime.compile_scope=layers"), tmp_path / "on",
                      progress=False)  # fmt: skip
    trainer.compiler.log = logged.append
    layers = [*trainer.model.encoder_layers, *trainer.model.decoder_layers]
    assert trainer.compiler.enabled and trainer.compiler.compiled == layers
    assert all(m._compiled_call_impl is not None for m in layers)
    assert _losses(trainer, 3) == plain
    assert logged == ["runtime.compile: compiling failed (RuntimeError: C++ compile error); "
                      "training goes on without it"]  # fmt: skip
    assert all(m._compiled_call_impl is None for m in layers)
    summary = trainer.compiler.summary()
    assert summary["compile"] == "off" and summary["compile_failed"].startswith("RuntimeError")


def test_no_compiler_means_the_plain_path(monkeypatch):
    monkeypatch.setattr(compiling, "cxx_compiler", lambda: None)
    model = nn.Linear(2, 2)
    compiler = StepCompiler.build(model, _config("on").runtime, _placement(), arch="transformer")
    assert not compiler.enabled and model._compiled_call_impl is None
    assert "no C++ compiler" in compiler.describe()
    assert compiler.summary() == {"compile": "off"}


def _placement():
    from atento.runtime import Placement

    return Placement.cpu_fp32()


@pytest.mark.skipif(compiling.cxx_compiler() is None, reason="inductor needs a C++ compiler")
def test_compiled_training_matches_the_plain_one(tmp_path):
    """The first 6 fp32 losses of a tiny Transformer (no dropout: a compiled forward draws its
    masks from inductor's own generator) with and without compiling, batch shapes changing at
    every step. Not bit-identical: inductor fuses elementwise chains and reorders the sums of
    layer norms and softmaxes, so values move by float32 ulps and Adam carries the difference
    on (measured: 6.7e-8 relative at most, one ulp, over these 6 steps); 1e-5 relative leaves
    that room 150 times and still fails a real error (a wrong mask, a lost dropout scale, a
    stale weight move the loss by 1e-3 or more). State dicts keep their keys (no
    `_orig_mod.`), so checkpoints load either way."""
    plain_trainer = Trainer(_config("off"), tmp_path / "plain", progress=False)
    plain = _losses(plain_trainer, 6)
    trainer = Trainer(_config("on", "train.max_steps=6", "train.valid_every=0"), tmp_path / "on",
                      progress=False)  # fmt: skip
    compiled = _losses(trainer, 6)
    assert compiled == pytest.approx(plain, rel=1e-5)
    summary = trainer.compiler.summary()
    assert summary["compile"] == "on" and summary["compile_graphs"] >= 1
    assert summary["compile_seconds"] > 0
    assert summary["compile_recompiles"] == 0  # six shapes, one dynamic graph set
    graphs = summary["compile_graphs"]
    _losses(trainer, 6)  # the same six shapes again: nothing new to compile
    assert trainer.compiler.summary()["compile_graphs"] == graphs
    trainer.validate()  # eager under the compiler: no new graphs for validation's shapes
    assert trainer.compiler.summary()["compile_graphs"] == graphs
    trainer.save_last()
    keys = set(load_checkpoint(tmp_path / "on" / LAST).model)
    assert keys == set(plain_trainer.model.state_dict())
    assert not any("_orig_mod" in k for k in keys)
