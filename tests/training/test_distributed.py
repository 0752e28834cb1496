"""Training on several processes (gloo, 2 ranks on the CPU, started without torchrun)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from atento.checkpoints import LAST, load_checkpoint
from atento.config_io import load_config
from atento.errors import AtentoError
from atento.training.distributed import deal, rank_batches
from atento.training.loop import Trainer
from conftest import CONFIGS, ROOT

WORKER = Path(__file__).with_name("ddp_worker.py")
# dropout 0: both sides of a parity test draw no masks; ~7 batches an epoch (odd)
BASE = ["model.dropout=0", "data.n_train=200", "train.batch_tokens=300", "train.valid_every=0",
        "runtime.precision=fp32", "runtime.collective_timeout=60"]  # fmt: skip


def _port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _ranks(run: Path, world: int, overrides: list[str], resume: bool = False,
           config: Path | None = None) -> list[dict]:  # fmt: skip
    """Train `world` ranks as plain processes; each rank's losses and batches."""
    port = _port()
    env = {**os.environ, "RESUME": "1" if resume else "0", "CONFIG": str(config or "")}
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(run), str(r), str(world), port, *overrides],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for r in range(world)
    ]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-2000:]
    return [json.loads((run / f"rank{r}.json").read_text()) for r in range(world)]


def _weights(run: Path) -> dict:
    return load_checkpoint(run / LAST).model


def _close(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=atol, msg=k)


@pytest.mark.parametrize("n,world,accum", [(7, 2, 1), (9, 2, 2), (6, 3, 1), (5, 1, 1), (10, 4, 2)])
def test_the_plan_is_dealt_disjointly_in_whole_steps(n, world, accum):
    plan = [[i] for i in range(n)]
    for epoch in range(4):
        kept, dropped = deal(plan, epoch=epoch, world_size=world, accum_steps=accum)
        assert len(kept) % (world * accum) == 0 and len(dropped) < world * accum
        assert sorted(kept + dropped) == plan
        steps = len(kept) // (world * accum)
        taken = [
            [b for k in range(steps)
             for b in rank_batches(kept, k, rank=r, world_size=world, accum_steps=accum)]
            for r in range(world)
        ]  # fmt: skip
        assert len({len(t) for t in taken}) == 1  # every rank takes as many batches
        flat = [b for t in taken for b in t]
        assert sorted(flat) == sorted(kept) and len(flat) == len(set(map(tuple, flat)))
    if n % (world * accum):  # what is left out rotates: not the same batches every epoch
        drops = {tuple(map(tuple, deal(plan, epoch=e, world_size=world, accum_steps=accum)[1]))
                 for e in range(4)}  # fmt: skip
        assert len(drops) > 1


def test_two_ranks_train_like_one_process_with_two_micro_batches(tmp_path):
    over = [*BASE, "train.max_steps=6"]
    ranks = _ranks(tmp_path / "ddp", 2, over)
    [single] = _ranks(tmp_path / "accum", 1, [*over, "train.accum_steps=2"])
    assert len(ranks[0]["losses"]) == len(ranks[1]["losses"]) == 6  # 7 batches: 3 steps an epoch
    assert ranks[0]["losses"] == pytest.approx(ranks[1]["losses"], abs=0)  # the same global loss
    assert ranks[0]["losses"] == pytest.approx(single["losses"], rel=1e-6)
    _close(_weights(tmp_path / "ddp"), _weights(tmp_path / "accum"), atol=1e-6)
    # rank r took batches r, r + 2, ... of the same plan: together, what one process took
    a, b = (set(map(tuple, r["batches"])) for r in ranks)
    assert not a & b and a | b == set(map(tuple, single["batches"]))


def test_stop_and_resume_under_ddp_equals_uninterrupted(tmp_path):
    over = [*BASE, "train.ema_decay=0.9", "train.clip_norm=0.5"]  # averaged, clipped
    _ranks(tmp_path / "full", 2, [*over, "train.max_steps=8"])
    _ranks(tmp_path / "split", 2, [*over, "train.max_steps=3"])
    resumed = _ranks(tmp_path / "split", 2, [*over, "train.max_steps=8"], resume=True)
    assert len(resumed[0]["losses"]) == 5
    _close(_weights(tmp_path / "full"), _weights(tmp_path / "split"), atol=0)
    full = load_checkpoint(tmp_path / "full" / LAST, training=True)
    split = load_checkpoint(tmp_path / "split" / LAST, training=True)
    _close(full.train_model, split.train_model, atol=0)
    training = load_checkpoint(tmp_path / "split" / LAST, training=True).training
    assert len(training["rng_ranks"]) == 2 and training["world"]["world_size"] == 2
    # the same run resumed by one process: refused, saying why
    cfg = load_config(CONFIGS / "toy_dates.yaml", [*BASE, "train.max_steps=12"])
    with pytest.raises(AtentoError, match="trained with 2 process"):
        Trainer(cfg, tmp_path / "split", resume=True, progress=False)


def test_a_rank_that_dies_stops_the_other_within_the_timeout(tmp_path):
    run = tmp_path / "r"
    port = _port()
    cli = [sys.executable, "-m", "atento", "train", str(CONFIGS / "toy_dates.yaml"), *BASE,
           "runtime.collective_timeout=20", "train.max_steps=100000", "train.checkpoint_every=2",
           "--out", str(run)]  # fmt: skip
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank),
               "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": port}  # fmt: skip
        procs.append(subprocess.Popen(cli, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True))  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and not (run / LAST).is_dir():
        time.sleep(0.1)
    assert (run / LAST).is_dir(), procs[0].stderr.read() if procs[0].poll() is not None else ""
    os.kill(procs[1].pid, signal.SIGKILL)
    killed = time.time()
    _, err = procs[0].communicate(timeout=90)
    assert procs[0].returncode not in (0, None)
    assert time.time() - killed < 60
    assert "lost the other ranks" in err and "--resume continues" in err
    procs[1].wait()
    assert load_checkpoint(run / LAST).step % 2 == 0  # the last checkpoint is intact


def test_resume_auto_starts_afresh_then_resumes(tmp_path, capsys):
    from atento.cli.main import main

    args = ["train", str(CONFIGS / "toy_dates.yaml"), *BASE]
    flags = ["--out", str(tmp_path / "r"), "--resume", "auto"]
    assert main([*args, "train.max_steps=2", *flags]) == 0
    assert main([*args, "train.max_steps=4", *flags]) == 0
    assert "resumed" in "".join(capsys.readouterr())
    assert load_checkpoint(tmp_path / "r" / LAST).step == 4


def test_nproc_starts_torchrun_for_this_machine(tmp_path):
    cli = [sys.executable, "-m", "atento", "train", str(CONFIGS / "toy_dates.yaml"), *BASE,
           "train.max_steps=4", "--nproc", "2", "--out", str(tmp_path / "r")]  # fmt: skip
    out = subprocess.run(cli, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["world_size"] == 2 and result["steps"] == 4


def test_classifier_ranks_map_one_sentence_store(tmp_path, toy_data):
    """MLM and classification prepare on every rank too: local rank 0 builds the sentence
    store, the other waits for it; both train on one plan like one process."""
    from atento.config_io import config_from_dict, dump_config
    from atento.data.store import stores_root
    from conftest import classify_config

    config = tmp_path / "cls.yaml"
    dump_config(config_from_dict(classify_config(toy_data)), config)
    over = ["train.max_steps=3", "train.valid_every=0", "runtime.precision=fp32",
            "runtime.collective_timeout=60", f"data.train={toy_data['valid']}"]  # fmt: skip
    ranks = _ranks(tmp_path / "ddp", 2, over, config=config)
    [single] = _ranks(tmp_path / "accum", 1, [*over, "train.accum_steps=2"], config=config)
    assert ranks[0]["losses"] == pytest.approx(ranks[1]["losses"], abs=0)
    assert ranks[0]["losses"] == pytest.approx(single["losses"], rel=1e-6)
    key = json.loads((tmp_path / "ddp" / "store.json").read_text())["key"]
    assert key == json.loads((tmp_path / "accum" / "store.json").read_text())["key"]
    assert (stores_root() / key / "manifest.json").is_file()
