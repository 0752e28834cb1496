"""`train.fused_optimizer`: AdamW's fused kernel trains as the per-parameter loop does, and a
resumed run keeps the implementation its config asks for."""

import pytest
import torch

from atento.config_io import load_config
from atento.training.loop import Trainer
from atento.training.optimizer import load_optimizer_state
from conftest import CONFIGS


def _trainer(tmp_path, fused: bool) -> Trainer:
    over = ["data.n_train=64", "runtime.precision=fp32", f"train.fused_optimizer={fused}"]
    return Trainer(load_config(CONFIGS / "toy_transformer.yaml", over), tmp_path / str(fused),
                   progress=False)  # fmt: skip


def _losses(trainer: Trainer, steps: int = 6) -> list[float]:
    batches = [trainer.task.collate(list(range(10 * i, 10 * i + 10))) for i in range(steps)]
    return [trainer.train_step(batch)[0] for batch in batches]


def test_fused_adamw_trains_like_the_loop(tmp_path):
    """Same data, same dropout masks (the optimiser draws no random numbers): the fused kernel
    computes AdamW's update in another order of float32 operations (e.g. 1 - beta^t, the
    square root and the division fused), a few ulps per weight per step, so the losses of 6
    steps agree to 1e-5 relative and the weights to 1e-5, not bit for bit. Except the key
    projections' biases: softmax ignores a constant added to every score, so their gradient
    is 0 up to rounding (~1e-11), and Adam's m / sqrt(v) of that noise is an update of about
    the learning rate whose sign either implementation may draw (it changes no output)."""
    plain = _trainer(tmp_path, False)  # each trainer seeds the generator: train it at once
    plain_losses = _losses(plain)
    fused = _trainer(tmp_path, True)
    assert plain.optimizer.param_groups[0]["fused"] is None
    assert fused.optimizer.param_groups[0]["fused"] is True
    assert _losses(fused) == pytest.approx(plain_losses, rel=1e-5)
    pairs = zip(fused.model.named_parameters(), plain.model.parameters(), strict=True)
    for (name, a), b in pairs:
        if not name.endswith("k_proj.bias"):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=name)


def test_resumed_optimizer_keeps_the_configured_implementation(tmp_path):
    plain, fused = _trainer(tmp_path, False), _trainer(tmp_path, True)
    _losses(plain, 2)
    load_optimizer_state(fused.optimizer, plain.optimizer.state_dict())
    assert fused.optimizer.param_groups[0]["fused"] is True
    state = fused.optimizer.state[next(iter(fused.model.parameters()))]
    assert int(state["step"]) == 2  # the moments and step came over
    _losses(fused, 1)  # and the fused kernel takes them
