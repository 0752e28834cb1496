"""Training from the corpus store: the same losses as the in-memory path it replaced, the
same store mapped again by `--resume`, and `atento prepare` ahead of `atento train`."""

from __future__ import annotations

import json

import numpy as np
import torch

from atento.cli.main import main
from atento.config_io import load_config
from atento.data.batching import TokenBatchSampler, collate, pair_lengths
from atento.data.parallel import encode_pairs, read_parallel
from atento.data.store import stores_root
from atento.training.loop import Trainer
from conftest import CONFIGS

TINY = ["model.emb_size=16", "model.hidden_size=16", "train.batch_tokens=200", "model.dropout=0"]


def _files_config(corpus, *extra):
    (src, tgt), (vsrc, vtgt) = corpus["train"], corpus["valid"]
    return load_config(CONFIGS / "toy_files.yaml", [
        f"data.train.src={src}", f"data.train.tgt={tgt}", f"data.valid.src={vsrc}",
        f"data.valid.tgt={vtgt}", "runtime.precision=fp32", "data.max_len=6", *TINY, *extra,
    ])  # fmt: skip


def test_first_losses_equal_the_in_memory_path(toy_corpus, tmp_path) -> None:
    """The first 12 fp32 losses, store vs main's in-memory path (pairs as lists, the
    per-example sampler input and list collate) with the same tokenizer: identical."""
    cfg = _files_config(toy_corpus)
    store = Trainer(cfg, tmp_path / "store", progress=False)
    memory = Trainer(cfg, tmp_path / "memory", progress=False)
    task = memory.task
    pairs = read_parallel(*toy_corpus["train"])
    encoded, dropped = encode_pairs(pairs, task.tokenizers["src"], task.tokenizers["tgt"],
                                    max_len=cfg.data.max_len)  # fmt: skip
    assert dropped == store.task.train.dropped > 0
    sampler = TokenBatchSampler(pair_lengths(encoded), batch_tokens=cfg.train.batch_tokens,
                                shuffle=True, seed=cfg.train.seed)  # fmt: skip
    plan = [list(b) for b in sampler.batches(0)]
    assert plan == store.task.batch_plan(0)
    losses = {"store": [], "memory": []}
    for idx in plan[:12]:
        losses["store"].append(store.train_step(store.task.collate(idx))[0])
        losses["memory"].append(memory.train_step(collate([encoded[i] for i in idx]))[0])
    assert losses["store"] == losses["memory"]
    for a, b in zip(store.model.parameters(), memory.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_resume_maps_the_store_the_run_recorded(toy_corpus, tmp_path) -> None:
    run = tmp_path / "run"
    Trainer(_files_config(toy_corpus, "train.max_steps=3"), run, progress=False).fit()
    key = json.loads((run / "store.json").read_text())["key"]
    before = sorted(p.name for p in stores_root().iterdir())
    assert key in before
    resumed = Trainer(_files_config(toy_corpus, "train.max_steps=5"), run, resume=True,
                      progress=False)  # fmt: skip
    assert resumed.task.train.store.key == key
    resumed.fit()
    assert sorted(p.name for p in stores_root().iterdir()) == before  # no second store


def test_lm_windows_read_the_memory_mapped_stream(lm_run) -> None:
    trainer = Trainer(load_config(lm_run / "config.yaml", ["train.max_steps=1"]),
                      lm_run.parent / "lm_again", progress=False)  # fmt: skip
    task = trainer.task
    assert isinstance(task.train_ids, np.memmap)
    plan = task.batch_plan(0)
    block = task.cfg.data.block_size
    ids = torch.from_numpy(np.asarray(task.train_ids, dtype=np.int64))
    batch = task.collate(plan[1])  # what main stacked from an int64 tensor of the whole text
    assert torch.equal(batch.x, torch.stack([ids[s : s + block] for s in plan[1]]))
    assert torch.equal(batch.y, torch.stack([ids[s + 1 : s + block + 1] for s in plan[1]]))


def test_prepare_then_train_uses_that_store(toy_corpus, tmp_path, capsys) -> None:
    (src, tgt), (vsrc, vtgt) = toy_corpus["train"], toy_corpus["valid"]
    args = [str(CONFIGS / "toy_files.yaml"), f"data.train.src={src}", f"data.train.tgt={tgt}",
            f"data.valid.src={vsrc}", f"data.valid.tgt={vtgt}", "data.vocab_size=57"]  # fmt: skip
    assert main(["prepare", *args, "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("corpus store ") and "src " in out and " rows" in out
    path = out.split()[2]
    assert main(["train", *args, *TINY, "train.max_steps=2", "--out", str(tmp_path / "r")]) == 0
    assert json.loads((tmp_path / "r" / "store.json").read_text())["path"] == path
