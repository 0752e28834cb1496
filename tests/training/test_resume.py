"""Resuming: a run stopped (or killed with -9) and resumed reaches the same weights."""

import os
import signal
import subprocess
import sys
import time

import torch

from atento.checkpoints import LAST, load_checkpoint
from atento.config_io import load_config
from atento.training.loop import Trainer
from conftest import CONFIGS

BASE = ["runtime.threads=1", "train.valid_every=6", "data.n_train=200", "train.batch_tokens=300"]


def _weights(run_dir):
    return load_checkpoint(run_dir / LAST).model


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_stop_and_resume_equals_uninterrupted(tmp_path):
    # 200 pairs at this budget is ~7 batches an epoch, so the runs cross an epoch boundary
    full = load_config(CONFIGS / "toy_dates.yaml", [*BASE, "train.max_steps=16"])
    Trainer(full, tmp_path / "full", progress=False).fit()

    half = load_config(CONFIGS / "toy_dates.yaml", [*BASE, "train.max_steps=9"])
    Trainer(half, tmp_path / "split", progress=False).fit()
    resumed = Trainer(full, tmp_path / "split", resume=True, progress=False)
    assert resumed.state.step == 9
    resumed.fit()
    _assert_same(_weights(tmp_path / "full"), _weights(tmp_path / "split"))
    ckpt = load_checkpoint(tmp_path / "split" / LAST, training=True)
    assert ckpt.progress["step"] == ckpt.step == 16
    assert ckpt.training["optimizer"]["state"]  # optimiser moments travel with the checkpoint


def test_kill_minus_nine_then_resume(tmp_path):
    args = [*BASE, "train.max_steps=60", "train.checkpoint_every=3", "train.valid_every=0"]
    cli = [sys.executable, "-m", "atento.cli.main", "train", str(CONFIGS / "toy_dates.yaml")]
    ref = tmp_path / "ref"
    assert subprocess.run([*cli, *args, "--out", str(ref)], capture_output=True).returncode == 0

    run = tmp_path / "killed"
    proc = subprocess.Popen([*cli, *args, "--out", str(run)], stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not (run / LAST).is_dir():
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stopped_at = load_checkpoint(run / LAST).step  # readable: written atomically
    assert stopped_at % 3 == 0 or stopped_at == 60
    out = subprocess.run([*cli, *args, "--out", str(run), "--resume"], capture_output=True)
    assert out.returncode == 0, out.stderr.decode()
    assert sorted(p.name for p in run.glob("checkpoint_*")) == [
        "checkpoint_best",
        "checkpoint_last",
    ]
    _assert_same(_weights(ref), _weights(run))


def test_fresh_run_refuses_to_overwrite(tmp_path):
    from atento.errors import AtentoError

    cfg = load_config(CONFIGS / "toy_dates.yaml", [*BASE, "train.max_steps=2"])
    Trainer(cfg, tmp_path / "r", progress=False).fit()
    try:
        Trainer(cfg, tmp_path / "r", progress=False)
    except AtentoError as exc:
        assert "--resume" in str(exc)
    else:
        raise AssertionError("a second run into the same directory must be refused")


def test_ctrl_c_saves_before_stopping(tmp_path):
    args = [*BASE, "train.max_steps=100000", "train.valid_every=0"]
    cli = [sys.executable, "-m", "atento.cli.main", "train", str(CONFIGS / "toy_dates.yaml")]
    run = tmp_path / "interrupted"
    proc = subprocess.Popen(
        [*cli, *args, "--out", str(run)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    while b"training pairs" not in proc.stdout.readline():  # the loop is about to start
        assert proc.poll() is None
    time.sleep(1.0)  # let it take some steps
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert b"--resume continues" in out
    stopped = load_checkpoint(run / LAST).step
    assert stopped > 0
    # the saved weights are those of the saved step: resuming reaches an uninterrupted run
    target = [*BASE, f"train.max_steps={stopped + 3}", "train.valid_every=0"]
    cfg = load_config(CONFIGS / "toy_dates.yaml", target)
    Trainer(cfg, run, resume=True, progress=False).fit()
    Trainer(cfg, tmp_path / "straight", progress=False).fit()
    _assert_same(_weights(tmp_path / "straight"), _weights(run))


def test_resuming_with_a_different_model_is_one_line_naming_keys_and_values(tmp_path, capsys):
    from atento.cli.main import main

    run = tmp_path / "r"
    train = ["train", str(CONFIGS / "toy_dates.yaml"), *BASE]
    assert main([*train, "train.max_steps=2", "--out", str(run)]) == 0
    saved = (run / "config.yaml").read_text()
    capsys.readouterr()
    for overrides, message in [
        (["model.hidden_size=64"],
         "config: model.hidden_size=64 differs from the run's model.hidden_size=32; resume with "
         "the run's config or train into a new --out"),
        (["model.hidden_size=64", "model.cell=lstm"],
         "config: model.cell=lstm, model.hidden_size=64 differ from the run's model.cell=gru, "
         "model.hidden_size=32;"),
    ]:  # fmt: skip
        code = main([*train, *overrides, "--out", str(run), "--resume"])
        err = capsys.readouterr().err
        assert code == 2 and message in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert (run / "config.yaml").read_text() == saved  # the run is left as it was
    # dropout shapes no weight: the run continues with the new value
    assert main([*train, "model.dropout=0.0", "train.max_steps=3", "--out", str(run),
                 "--resume"]) == 0  # fmt: skip
    assert load_checkpoint(run / LAST).step == 3


def test_weights_that_do_not_fit_are_one_line_too(tmp_path, monkeypatch):
    from atento.errors import AtentoError
    from atento.training import run_files

    cfg = load_config(CONFIGS / "toy_dates.yaml", [*BASE, "train.max_steps=2"])
    Trainer(cfg, tmp_path / "r", progress=False).fit()
    monkeypatch.setattr(run_files, "check_same_model", lambda cfg, saved: None)
    wider = load_config(CONFIGS / "toy_dates.yaml", [*BASE, "model.hidden_size=64"])
    try:
        Trainer(wider, tmp_path / "r", resume=True, progress=False)
    except AtentoError as exc:
        assert "weights do not fit the model" in str(exc) and "size mismatch for" in str(exc)
        assert "\n" not in str(exc)
    else:
        raise AssertionError("weights of another shape must not load")
