"""A task that exists only in this test trains through the unchanged loop, and resumes; its
predictor makes it decodable through the command line, the Python API and the server, none of
which is edited for it.

Majority vote over a sequence of two token kinds: a bag-of-embeddings classifier, selected by
the LOWEST validation loss (the other direction from translation's BLEU), counted in examples.
Its sentences are words "a" and "b"; the label is the one in the majority.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from atento.checkpoints import BEST, LAST, load_checkpoint
from atento.cli.main import main
from atento.config_io import config_from_dict
from atento.predictors.base import Predictor
from atento.predictors.classify import Label
from atento.registry import register_architecture, register_task
from atento.rundir import load_run
from atento.tasks.base import LossOutput, Selection, Task
from atento.training.loop import Trainer


@dataclass
class MajorityData:
    n_train: int = 256
    n_valid: int = 64
    length: int = 7
    seed: int = 0


@dataclass
class BagConfig:
    arch: str = "bag_classifier"
    width: int = 8


class BagClassifier(nn.Module):
    def __init__(self, vocab: int, width: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.out = nn.Linear(width, 2)

    def forward(self, ids: Tensor) -> Tensor:
        return self.out(self.embed(ids).mean(1))  # (B, 2)


@register_architecture("bag_classifier", BagConfig)
def build_bag(cfg, *, vocab: int) -> nn.Module:
    return BagClassifier(vocab, cfg.model.width)


@dataclass
class LabelBatch:
    ids: Tensor  # (B, L)
    labels: Tensor  # (B,)

    def to(self, device, non_blocking: bool = False) -> LabelBatch:
        return LabelBatch(self.ids.to(device), self.labels.to(device))


def _examples(n: int, length: int, seed: int) -> list[tuple[list[int], int]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        ids = [rng.choice((4, 5)) for _ in range(length)]
        out.append((ids, int(ids.count(5) > length // 2)))
    return out


class MajorityPredictor(Predictor):
    """Offers `classify` only: a sentence of words a / b -> the majority label."""

    operations = frozenset({"classify"})

    @torch.no_grad()
    def classify(self, lines, policy=None, *, name="input", batch_size=64, precision=None):
        out = []
        for line in lines:
            if not line:
                out.append(None)
                continue
            ids = torch.tensor([[4 if w == "a" else 5 for w in line.split()]])
            p = self.run.model(ids).softmax(-1)[0]
            out.append(Label("ab"[int(p.argmax())], float(p.max()),
                             {"a": float(p[0]), "b": float(p[1])}))  # fmt: skip
        return out


class MajorityTask(Task):
    name = "majority"
    predictor = MajorityPredictor
    data_config = MajorityData
    selection = Selection("loss", higher_is_better=False)
    unit = "ex"

    def prepare(self, run_dir: Path | None, tokenizers) -> None:
        self.tokenizers = {}
        d = self.cfg.data
        self.train = _examples(d.n_train, d.length, d.seed)
        self.valid = _examples(d.n_valid, d.length, d.seed + 1)

    def model_sizes(self) -> dict[str, int]:
        return {"vocab": 6}

    def batch_plan(self, epoch: int) -> list[list[int]]:
        order = list(range(len(self.train)))
        random.Random(self.cfg.train.seed * 1000 + epoch).shuffle(order)
        return [order[i : i + 32] for i in range(0, len(order), 32)]

    def collate(self, indices: list[int]) -> LabelBatch:
        ids = torch.tensor([self.train[i][0] for i in indices])
        return LabelBatch(ids, torch.tensor([self.train[i][1] for i in indices]))

    def count(self, batch: LabelBatch) -> int:
        return batch.labels.numel()

    def forward(self, model: nn.Module, batch: LabelBatch) -> Tensor:
        return model(batch.ids)

    def loss(self, outputs: Tensor, batch: LabelBatch) -> LossOutput:
        return LossOutput(F.cross_entropy(outputs.float(), batch.labels, reduction="sum"))

    def validate(self, model: nn.Module, placement) -> dict[str, float]:
        ids = torch.tensor([x for x, _ in self.valid], device=placement.device)
        labels = torch.tensor([y for _, y in self.valid], device=placement.device)
        logits = model(ids).float()
        return {
            "loss": round(float(F.cross_entropy(logits, labels)), 5),
            "accuracy": float((logits.argmax(1) == labels).float().mean()),
        }


register_task("majority", MajorityTask)


def _cfg(steps: int):
    return config_from_dict({
        "task": "majority", "model": {"arch": "bag_classifier"},
        "train": {"lr": 0.05, "warmup_steps": 1, "max_steps": steps, "valid_every": 4,
                  "label_smoothing": 0.0},
        "runtime": {"precision": "fp32"},
    })  # fmt: skip


def test_a_new_task_trains_selects_by_lowest_loss_and_resumes_exactly(tmp_path):
    result = Trainer(_cfg(24), tmp_path / "full", progress=False).fit()
    rows = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [4, 8, 12, 16, 20, 24]  # 8 batches an epoch: 3 epochs
    assert rows[-1]["accuracy"] > 0.9 and rows[-1]["loss"] < rows[0]["loss"]
    assert result.metric == "loss" and result.best_score == min(r["loss"] for r in rows)
    best = load_checkpoint(tmp_path / "full" / BEST)
    assert best.step == min(rows, key=lambda r: r["loss"])["step"] and best.tokenizers == {}

    Trainer(_cfg(10), tmp_path / "split", progress=False).fit()  # stops inside epoch 1
    Trainer(_cfg(24), tmp_path / "split", resume=True, progress=False).fit()
    a = load_checkpoint(tmp_path / "full" / LAST).model
    b = load_checkpoint(tmp_path / "split" / LAST).model
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)

    run = load_run(tmp_path / "full")  # decoding side: the run loads through the registry
    assert isinstance(run.model, BagClassifier) and not run.model.training


def test_a_new_task_decodes_through_the_cli_the_api_and_the_server(tmp_path, capsys, monkeypatch):
    import io

    from fastapi.testclient import TestClient

    import atento
    from atento.serve.app import create_app

    Trainer(_cfg(24), tmp_path / "run", progress=False).fit()
    run = str(tmp_path / "run")
    sentences = ["a a a b", "b b a b b", "a b a"]
    labels = [x.label for x in atento.load(run).classify(sentences)]
    assert labels == ["a", "b", "a"]  # learnt the majority (accuracy > 0.9 above)

    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(sentences) + "\n"))
    capsys.readouterr()
    assert main(["classify", run]) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == labels

    assert main(["translate", run, "-i", str(tmp_path / "none.txt")]) == 2  # not offered
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO("a b\n"))
    assert main(["translate", run]) == 2
    err = capsys.readouterr().err.strip()
    assert "is a majority run; translate needs a translation or lm run" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err

    with TestClient(create_app([atento.load(run)])) as client:
        r = client.post("/v1/classify", json={"texts": sentences})
        assert r.status_code == 200 and [x["label"] for x in r.json()["labels"]] == labels
        r = client.post("/v1/translate", json={"text": "a b"})
        assert r.status_code == 422 and r.json()["error"]["item"] == "model"


def test_the_builtins_come_from_components_and_a_programs_own_name_wins(monkeypatch) -> None:
    from atento import components, registry

    monkeypatch.setattr(registry, "_ARCHITECTURES", {})
    monkeypatch.setattr(registry, "_TASKS", {})
    monkeypatch.setattr(registry, "_loaded", False)
    mine = registry.register_architecture("gpt", BagConfig)(build_bag)  # before the first lookup
    assert set(registry.architectures()) == set(components.ARCHITECTURES)
    assert set(registry.tasks()) == set(components.TASKS)
    assert registry.architecture("gpt").build is mine and registry.architecture("gpt").cpu_bf16
    rnn = registry.architecture("rnn")
    assert (rnn.config_cls, rnn.cpu_bf16) == (components.ARCHITECTURES["rnn"][0], False)
    assert registry.task_class("lm") is components.TASKS["lm"]


def test_each_predictor_reads_the_evaluate_options_its_task_adds() -> None:
    """`Predictor.reads` is what makes another task's option an error: it must cover every
    option the task's own `add_evaluate_arguments` registers, or that option would be refused
    on the task's own runs."""
    import argparse

    from atento.registry import tasks

    for name, task_cls in tasks().items():
        parser = argparse.ArgumentParser()
        before = {a.dest for a in parser._actions}
        task_cls.add_evaluate_arguments(parser)
        added = {a.dest for a in parser._actions} - before
        assert added <= task_cls.predictor.reads, (name, added - task_cls.predictor.reads)
