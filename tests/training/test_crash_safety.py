"""Training killed with SIGKILL at named points, then resumed: nothing lost, nothing repeated.
A full or read-only disk is a one-line error that keeps the last good checkpoint."""

import errno
import json
import os
import subprocess
import sys

import pytest
import torch

from atento.checkpoints import LAST, load_checkpoint
from atento.config_io import load_config
from atento.errors import AtentoError
from atento.training.loop import Trainer
from conftest import CONFIGS, ROOT

ARGS = ["runtime.threads=1", "data.n_train=200", "train.batch_tokens=300", "train.max_steps=12",
        "train.valid_every=4", "train.checkpoint_every=2", "runtime.precision=fp32"]  # fmt: skip


def _train(run, fault=None):
    env = {k: v for k, v in os.environ.items() if k != "ATENTO_FAULT"}
    if fault:
        env["ATENTO_FAULT"] = fault
    cli = [sys.executable, "-m", "atento", "train", str(CONFIGS / "toy_dates.yaml"), *ARGS,
           "--out", str(run), "--resume", "auto"]  # fmt: skip
    return subprocess.run(cli, env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)


def _steps(run):
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run = tmp_path_factory.mktemp("crash") / "straight"
    assert _train(run).returncode == 0
    return run


@pytest.mark.parametrize(
    "fault", ["step@5", "checkpoint-write@3", "checkpoint-commit@4", "validation@2"]
)
def test_killed_at_a_named_point_then_resumed_equals_uninterrupted(reference, tmp_path, fault):
    run = tmp_path / "r"
    killed = _train(run, fault)
    assert killed.returncode == -9, killed.stderr[-1500:]  # SIGKILL: no cleanup ran
    resumed = _train(run)
    assert resumed.returncode == 0, resumed.stderr[-1500:]
    assert _steps(run) == _steps(reference) == [4, 8, 12]  # no row repeated or missing
    a, b = load_checkpoint(reference / LAST).model, load_checkpoint(run / LAST).model
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
    assert sorted(p.name for p in run.glob("checkpoint*")) == ["checkpoint_best", "checkpoint_last"]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_full_or_read_only_disk_is_one_line_and_keeps_the_last_checkpoint(
    tmp_path, monkeypatch, code
):
    cfg = load_config(CONFIGS / "toy_dates.yaml", [*ARGS, "train.max_steps=4"])
    Trainer(cfg, tmp_path / "r", progress=False).fit()
    longer = load_config(CONFIGS / "toy_dates.yaml", [*ARGS, "train.max_steps=8"])
    trainer = Trainer(longer, tmp_path / "r", resume=True, progress=False)

    def full(*_):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", full)  # every checkpoint file is fsync-ed
    with pytest.raises(AtentoError) as err:
        trainer.fit()
    message = str(err.value)
    assert os.strerror(code) in message and "last good checkpoint" in message
    assert "\n" not in message
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "r" / LAST).step == 4  # intact and loadable
    assert sorted(p.name for p in (tmp_path / "r").glob("checkpoint*")) == [
        "checkpoint_best", "checkpoint_last"]  # fmt: skip
