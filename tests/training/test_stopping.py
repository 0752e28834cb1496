"""The budgets that end training: train.max_epochs, train.max_minutes (on a patched clock) and
train.patience, each pinned to the exact step and validation at which it stops.

A task that exists only here makes the numbers hand-checkable: an epoch is `data.batches`
batches of one example, each training batch moves the clock by `data.seconds`, and validation
returns the scores of `data.scores` in turn (higher is better).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn

from atento.checkpoints import BEST, LAST, load_checkpoint
from atento.config_io import config_from_dict
from atento.registry import register_architecture, register_task
from atento.tasks.base import LossOutput, Selection, Task
from atento.training.loop import Trainer


class Clock:
    """A stand-in for time.perf_counter that only training batches move."""

    now = 0.0

    def __call__(self) -> float:
        return self.now


CLOCK = Clock()


@dataclass
class ScriptData:
    batches: int = 100  # batches an epoch
    scores: str = ""  # validation scores in turn, comma-separated (then 0.0)
    seconds: float = 10.0  # clock seconds each training batch takes


@dataclass
class ProbeConfig:
    arch: str = "stop_probe"


@register_architecture("stop_probe", ProbeConfig)
def build_probe(cfg, **sizes) -> nn.Module:
    return nn.Linear(1, 1)


class ScriptedTask(Task):
    name = "scripted_stop"
    data_config = ScriptData
    selection = Selection("score", higher_is_better=True)
    unit, units = "ex", "examples"

    def prepare(self, run_dir, tokenizers) -> None:
        self.tokenizers = {}
        self.validations = 0
        self.batches_seen = 0

    def model_sizes(self) -> dict[str, int]:
        return {}

    def batch_plan(self, epoch: int) -> list[list[int]]:
        return [[i] for i in range(self.cfg.data.batches)]

    def collate(self, indices: list[int]) -> Tensor:
        return torch.ones(len(indices), 1)

    def count(self, batch: Tensor) -> int:
        return batch.size(0)

    def forward(self, model: nn.Module, batch: Tensor) -> Tensor:
        CLOCK.now += self.cfg.data.seconds
        self.batches_seen += 1
        return model(batch)

    def loss(self, outputs: Tensor, batch: Tensor) -> LossOutput:
        seen = torch.tensor(float(self.batches_seen))  # an extra term: 1, 2, 3, ... in turn
        return LossOutput((outputs.float() ** 2).sum(), {"seen": seen})

    def validate(self, model: nn.Module, placement) -> dict[str, float]:
        scores = [float(s) for s in self.cfg.data.scores.split(",") if s]
        i, self.validations = self.validations, self.validations + 1
        return {"score": scores[i] if i < len(scores) else 0.0}


register_task("scripted_stop", ScriptedTask)


@pytest.fixture(autouse=True)
def _clock(monkeypatch):
    CLOCK.now = 1000.0
    monkeypatch.setattr(time, "perf_counter", CLOCK)


def _cfg(data: dict, train: dict):
    return config_from_dict({
        "task": "scripted_stop", "data": data, "model": {"arch": "stop_probe"},
        "train": {"warmup_steps": 1, **train},
        "runtime": {"device": "cpu", "precision": "fp32"},
    })  # fmt: skip


def _rows(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_max_epochs_stops_after_the_last_batch_of_the_last_epoch(tmp_path):
    # 3 batches an epoch, one a step: epoch 0 is steps 1-3, epoch 1 steps 4-6; after step 6
    # the epoch counter reaches 2 = max_epochs. Validations: step 4 (epoch 1), then the final
    # one at step 6 (the loop validates where it stopped), counted in epoch 2.
    cfg = _cfg({"batches": 3}, {"max_epochs": 2, "valid_every": 4})
    result = Trainer(cfg, tmp_path / "r", progress=False).fit()
    assert (result.stopped_by, result.steps) == ("max_epochs", 6)
    assert [(r["step"], r["epoch"]) for r in _rows(tmp_path / "r")] == [(4, 1), (6, 2)]
    progress = load_checkpoint(tmp_path / "r" / LAST, training=True).progress
    assert (progress["epoch"], progress["batch_in_epoch"]) == (2, 0)


def test_max_minutes_stops_at_the_first_step_past_the_budget(tmp_path):
    # each step moves the clock 10 s, so after step k 10k s have passed; 1 minute is reached
    # (10k >= 60) at step 6. No validation on the way (valid_every=0): one at the end.
    cfg = _cfg({"seconds": 10.0}, {"max_minutes": 1.0, "valid_every": 0})
    result = Trainer(cfg, tmp_path / "r", progress=False).fit()
    assert (result.stopped_by, result.steps, result.seconds) == ("max_minutes", 6, 60.0)
    assert [r["step"] for r in _rows(tmp_path / "r")] == [6]
    # one example a step in 10 s: 0.1 examples/s, named by the task's unit
    assert result.summary()["examples_per_second"] == _rows(tmp_path / "r")[0][
        "train_examples_per_second"] == 0.1  # fmt: skip
    assert "tokens_per_second" not in result.summary()
    # the budget counts every session of the run: resumed with 1.5 minutes it has 30 s left,
    # 3 more steps (elapsed 60 + 10j >= 90 at j = 3)
    longer = _cfg({"seconds": 10.0}, {"max_minutes": 1.5, "valid_every": 0})
    result = Trainer(longer, tmp_path / "r", resume=True, progress=False).fit()
    assert (result.stopped_by, result.steps, result.seconds) == ("max_minutes", 9, 90.0)


def test_patience_stops_at_the_validation_that_exhausts_it(tmp_path):
    # validations every 2 steps score 1, 2, 2, 1.5, 3, ...: step 2 best (1), step 4 best (2),
    # step 6 not better (2 is not > 2: 1 bad), step 8 worse (2 bad = patience): stop at step 8
    # with 4 validations; one more (step 10, score 3) would improve and never stop again
    # before max_steps.
    cfg = _cfg({"scores": "1,2,2,1.5,3,4,5,6,7,8,9,10"},
               {"patience": 2, "valid_every": 2, "max_steps": 24})  # fmt: skip
    result = Trainer(cfg, tmp_path / "r", progress=False).fit()
    assert (result.stopped_by, result.steps, result.best_score) == ("early_stopping", 8, 2.0)
    assert [(r["step"], r["score"]) for r in _rows(tmp_path / "r")] == [
        (2, 1.0), (4, 2.0), (6, 2.0), (8, 1.5)]  # fmt: skip
    assert load_checkpoint(tmp_path / "r" / BEST).step == 4


def test_no_budget_reached_runs_the_steps_asked_for(tmp_path):
    # 5 steps are epoch 0's 3 batches and 2 of epoch 1's, 50 s of the 10 minutes, and the
    # scores rise at every validation (no bad one): max_steps ends it, the others are not reached
    cfg = _cfg({"batches": 3, "scores": "1,2,3,4,5"},
               {"max_steps": 5, "max_epochs": 2, "max_minutes": 10.0, "patience": 3,
                "valid_every": 1})  # fmt: skip
    result = Trainer(cfg, tmp_path / "r", progress=False).fit()
    assert (result.stopped_by, result.steps, result.seconds) == ("max_steps", 5, 50.0)
    assert len(_rows(tmp_path / "r")) == 5


def test_extra_loss_terms_are_logged_as_their_mean_since_the_previous_validation(tmp_path):
    # the extra term "seen" is 1, 2, 3, 4 in the steps 1-4; validations at steps 2 and 4 log
    # the means of (1, 2) and (3, 4)
    cfg = _cfg({}, {"max_steps": 4, "valid_every": 2})
    Trainer(cfg, tmp_path / "r", progress=False).fit()
    assert [(r["step"], r["train_seen"]) for r in _rows(tmp_path / "r")] == [(2, 1.5), (4, 3.5)]
