"""Shared fixtures: tiny seeded runs and toy corpora (seconds on 2 CPU cores)."""

from __future__ import annotations

import atexit
import os
import random
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

from atento.config_io import config_from_dict, load_config
from atento.training.loop import Trainer

# Tiny models gain nothing from a second thread, and one thread keeps the suite steady on a
# shared machine (2-thread PyTorch slows down several-fold next to another busy process).
torch.set_num_threads(1)
# `runtime.precision: auto` means fp32 in tests on every machine (subprocesses inherit this):
# scores are compared to 1e-4, and bf16 would change them with the CPU the suite runs on.
os.environ["ATENTO_NATIVE_BF16"] = "0"
# decoding's output layer: F.linear, not a kernel chosen by timing (atento.kernels), so that
# fp32 outputs do not depend on the machine's load; tests/test_kernels.py sets its own
os.environ.setdefault("ATENTO_DECODE_KERNEL", "plain")
# and training's fp32 products likewise (runtime.linear_kernel): tests/test_kernels.py and
# tests/training/test_linear_kernel.py choose their own
os.environ.setdefault("ATENTO_LINEAR_KERNEL", "plain")

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
SHARED_DATA = ROOT.parent / "shared" / "data"

FRENCH = "le la un une chat chien maison rouge bleu grand petit mange court dort voit"
ENGLISH = "the the a a cat dog house red blue big small eats runs sleeps sees"
WORDS = FRENCH.split()
TRANS = dict(zip(WORDS, ENGLISH.split(), strict=True))


def write_toy_corpus(directory: Path, n: int, seed: int, name: str) -> tuple[Path, Path]:
    """Word-for-word 'French' -> 'English' sentences in two line-aligned files."""
    rng = random.Random(seed)
    src, tgt = [], []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(2, 7))]
        src.append(" ".join(words))
        tgt.append(" ".join(TRANS[w] for w in words))
    directory.mkdir(parents=True, exist_ok=True)
    s, t = directory / f"{name}.fr", directory / f"{name}.en"
    s.write_text("\n".join(src) + "\n", encoding="utf-8")
    t.write_text("\n".join(tgt) + "\n", encoding="utf-8")
    return s, t


# No test writes into ~/.cache: corpus stores (and downloads, features) go to one temporary
# cache for the session (set before any fixture builds a run; subprocesses inherit it).
os.environ["ATENTO_CACHE"] = tempfile.mkdtemp(prefix="atento-test-cache-")
atexit.register(shutil.rmtree, os.environ["ATENTO_CACHE"], ignore_errors=True)


@pytest.fixture(autouse=True)
def _environment_restored():
    """What a test (or a command it runs in-process, e.g. the oneDNN cap that `atento train`
    sets) puts into os.environ does not leak into the tests after it."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="session")
def toy_corpus(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    root = tmp_path_factory.mktemp("toy_corpus")
    return {
        "train": write_toy_corpus(root, 300, 1, "train"),
        "valid": write_toy_corpus(root, 20, 2, "valid"),
    }


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory) -> Path:
    """A tiny trained dates run directory (char tokenizer, additive attention)."""
    run_dir = tmp_path_factory.mktemp("runs") / "toy_dates"
    cfg = load_config(CONFIGS / "toy_dates.yaml")
    Trainer(cfg, run_dir, progress=False).fit()
    return run_dir


FLICKR8K = SHARED_DATA / "flickr8k"


@pytest.fixture(scope="session")
def flickr_mini(tmp_path_factory) -> Path:
    """A Flickr8k-shaped folder with 10 real images (8 train, 2 dev) and their captions, plus
    a caption line for an image in no split; skipped where the shared copy is absent."""
    if not (FLICKR8K / "captions.txt").is_file():
        pytest.skip(f"Flickr8k not found in {FLICKR8K}")
    root = tmp_path_factory.mktemp("flickr_mini")
    (root / "images").mkdir()
    train = (FLICKR8K / "train.txt").read_text().split()[:8]
    dev = (FLICKR8K / "dev.txt").read_text().split()[:2]
    for name in [*train, *dev]:
        (root / "images" / name).write_bytes((FLICKR8K / "images" / name).read_bytes())
    wanted = {*train, *dev}
    lines = [
        line
        for line in (FLICKR8K / "captions.txt").read_text(encoding="utf-8").splitlines()
        if line.split("#", 1)[0] in wanted
    ]
    lines.append("not_in_any_split.jpg#0\tA caption of an image in no split .")
    (root / "captions.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "train.txt").write_text("\n".join(train) + "\n")
    (root / "dev.txt").write_text("\n".join(dev) + "\n")
    return root


def caption_overrides(flickr: Path, cache: Path) -> list[str]:
    """A tiny captioning model on `flickr_mini` for a few steps (seconds)."""
    return [
        f"data.dir={flickr}", f"data.cache={cache}", "data.min_count=1",
        "model.emb_size=16", "model.hidden_size=32", "model.dropout=0.0",
        "train.max_steps=8", "train.valid_every=4", "train.max_minutes=0",
        "train.batch_tokens=400", "runtime.threads=0",
    ]  # fmt: skip


@pytest.fixture(scope="session")
def caption_run(flickr_mini, tmp_path_factory) -> Path:
    """A tiny trained captioning run directory (through `atento train`'s loop)."""
    run_dir = tmp_path_factory.mktemp("runs") / "caption"
    cache = tmp_path_factory.mktemp("feature_cache")
    cfg = load_config(CONFIGS / "flickr8k_caption.yaml", caption_overrides(flickr_mini, cache))
    Trainer(cfg, run_dir, progress=False).fit()
    return run_dir


# ---------------------------------------------------------------- text encoders (classify/)
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


# ---------------------------------------------------------------- runs of every kind
@pytest.fixture(scope="session")
def tf_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "toy_transformer"
    Trainer(load_config(CONFIGS / "toy_transformer.yaml"), run_dir, progress=False).fit()
    return run_dir


@pytest.fixture(scope="session")
def lm_run(tmp_path_factory):
    """A tiny character language model (a few seconds of training)."""
    base = tmp_path_factory.mktemp("lm")
    text = base / "toy.txt"
    text.write_text("the cat sat on the mat. the dog sat on the log.\n" * 40, encoding="utf-8")
    overrides = [f"data.train={text}", "model.d_model=32", "model.layers=2", "model.heads=2",
                 "model.ff_size=64", "model.context=32", "data.block_size=32",
                 "train.batch_tokens=256", "train.warmup_steps=5", "train.max_steps=40",
                 "train.valid_every=40"]  # fmt: skip
    run_dir = base / "lm_run"
    Trainer(load_config(CONFIGS / "shakespeare_char.yaml", overrides), run_dir,
            progress=False).fit()  # fmt: skip
    return run_dir
