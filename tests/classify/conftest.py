"""Toy sentiment data and tiny pretrained / fine-tuned runs (seconds on one core)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from atento.config import config_from_dict
from atento.training.loop import Trainer

GOOD = ["good", "great", "fine", "lovely", "superb"]
BAD = ["bad", "awful", "dull", "boring", "poor"]
FILLER = "the movie film plot actor was is a very rather quite story".split()  # noqa: SIM905

TINY = {"d_model": 32, "heads": 2, "layers": 2, "ff_size": 64, "context": 32, "dropout": 0.0}
TRAIN = {"batch_tokens": 400, "lr": 0.003, "warmup_steps": 5, "label_smoothing": 0.0,
         "max_steps": 12, "valid_every": 6, "seed": 1}  # fmt: skip


def toy_sentences(n: int, seed: int) -> list[tuple[str, str]]:
    """(sentence, label): 1 when a positive word occurs, 0 for a negative one."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        label = rng.randint(0, 1)
        words = [rng.choice(FILLER) for _ in range(rng.randint(2, 8))]
        words.insert(rng.randint(0, len(words)), rng.choice(GOOD if label else BAD))
        out.append((" ".join(words), str(label)))
    return out


def write_tsv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("sentence\tlabel\n" + "".join(f"{s} \t{y}\n" for s, y in rows),
                    encoding="utf-8")  # fmt: skip
    return path


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("toy_sst")
    return {
        "train": write_tsv(root / "train.tsv", toy_sentences(300, 1)),
        "valid": write_tsv(root / "valid.tsv", toy_sentences(60, 2)),
    }


def mlm_config(toy_data, **model) -> dict:
    return {
        "task": "mlm",
        "data": {
            "train": str(toy_data["train"]),
            "format": "sst2",
            "exclude": str(toy_data["valid"]),
            "tokenizer": "sentencepiece",
            "vocab_size": 60,
        },  # fmt: skip
        "model": {"arch": "bert", **TINY, **model},
        "train": dict(TRAIN),
        "runtime": {"device": "cpu"},
    }


def classify_config(toy_data, arch="bert", **data) -> dict:
    return {
        "task": "classify",
        "data": {"train": str(toy_data["train"]), "valid": str(toy_data["valid"]),
                 "format": "sst2", "tokenizer": "sentencepiece", "vocab_size": 60, **data},
        "model": {"arch": arch, **TINY},
        "train": dict(TRAIN),
        "runtime": {"device": "cpu"},
    }  # fmt: skip


@pytest.fixture(scope="session")
def mlm_run(tmp_path_factory, toy_data) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "mlm"
    Trainer(config_from_dict(mlm_config(toy_data)), run_dir, progress=False).fit()
    return run_dir


@pytest.fixture(scope="session")
def bert_run(tmp_path_factory, toy_data, mlm_run) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "bert"
    cfg = config_from_dict(classify_config(toy_data), [f"model.init_from={mlm_run}"])
    Trainer(cfg, run_dir, progress=False).fit()
    return run_dir
