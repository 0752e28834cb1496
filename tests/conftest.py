"""Shared fixtures: tiny seeded runs and toy corpora (seconds on 2 CPU cores)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import torch

from atento.config import load_config
from atento.training.loop import Trainer

# Tiny models gain nothing from a second thread, and one thread keeps the suite steady on a
# shared machine (2-thread PyTorch slows down several-fold next to another busy process).
torch.set_num_threads(1)
# `runtime.precision: auto` means fp32 in tests on every machine (subprocesses inherit this):
# scores are compared to 1e-4, and bf16 would change them with the CPU the suite runs on.
os.environ["ATENTO_NATIVE_BF16"] = "0"

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
