"""MLM pretraining and classification from the corpus store: the same tokenizers, batches and
fp32 losses as the in-memory path they replaced (rebuilt here as an oracle: the file read
whole, `tok.encode_batch`, Python lists, list padding), the store reused by a second run,
rebuilt when an input changes, and mapped again by `--resume`."""

from __future__ import annotations

import json

import pytest
import torch

from atento.config_io import config_from_dict
from atento.data.batching import TokenBatchSampler, _pad
from atento.data.labelled import drop_contained, read_labelled
from atento.data.store import stores_root
from atento.data.store.keys import digest_of
from atento.data.tokenizers import LabelSet, build_tokenizer
from atento.training.loop import Trainer
from conftest import classify_config, mlm_config, toy_sentences, write_tsv

STEPS = 20


def _trainer(raw: dict, path, **kw) -> Trainer:
    raw = {**raw, "runtime": {"device": "cpu", "precision": "fp32"}}
    return Trainer(config_from_dict(raw), path, progress=False, **kw)


def _old_mlm(cfg) -> tuple[list[str], list[str]]:
    """main's `MaskedLMTask._sentences`: training and validation sentences, in memory."""
    data = cfg.data
    excluded = set(read_labelled(data.exclude, data.format).sentences) if data.exclude else set()
    train = [s for s in read_labelled(data.train, data.format).sentences if s not in excluded]
    if data.drop_contained:
        train = drop_contained(train)
    cut = int(len(train) * (1 - data.valid_fraction))
    return train[:cut], train[cut:]


def _old_mlm_ids(tok, sentences, context) -> list[list[int]]:
    """main's `sentence_ids`: `[CLS] x [SEP]`, cut to the context."""
    return [[tok.bos_id, *ids[: context - 2], tok.eos_id] for ids in tok.encode_batch(sentences)]


def _same_batch(a, b) -> None:
    for name in a.__dataclass_fields__:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and torch.equal(x, y), name


def _losses(store: Trainer, memory: Trainer, plan, old_batch) -> None:
    """The first STEPS updates of both trainers, on the store's batch and on the in-memory
    one (collated from the same torch RNG state: MLM draws its masks there)."""
    losses = {"store": [], "memory": []}
    for idx in plan[:STEPS]:
        rng = torch.get_rng_state()
        a = store.task.collate(idx)
        torch.set_rng_state(rng)
        b = old_batch(idx)
        _same_batch(a, b)
        losses["store"].append(store.train_step(a)[0])
        losses["memory"].append(memory.train_step(b)[0])
    assert losses["store"] == losses["memory"]
    for p, q in zip(store.model.parameters(), memory.model.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("kind", ["sentencepiece", "char"])
def test_mlm_equals_the_in_memory_path(toy_data, tmp_path, kind) -> None:
    raw = mlm_config(toy_data, context=8)  # some sentences are cut to the context
    raw["data"] = {**raw["data"], "tokenizer": kind, "valid_fraction": 0.1}
    store = _trainer(raw, tmp_path / "store")
    memory = _trainer(raw, tmp_path / "memory")
    cfg, task = store.cfg, store.task
    train, valid = _old_mlm(cfg)
    old_tok = build_tokenizer(kind, train, vocab_size=cfg.data.vocab_size, run_dir=None,
                              name="text")  # fmt: skip
    tok = task.tokenizers["text"]
    assert digest_of({"text": tok}) == digest_of({"text": old_tok})
    context = cfg.model.context
    ids = _old_mlm_ids(tok, train, context)
    assert task.valid_ids == _old_mlm_ids(tok, valid, context)
    assert any(len(s) == context for s in ids) and len(ids) == len(task.store)
    sampler = TokenBatchSampler([(len(s), len(s)) for s in ids],
                                batch_tokens=cfg.train.batch_tokens, shuffle=True,
                                seed=cfg.train.seed)  # fmt: skip
    plan = [list(b) for b in sampler.batches(0)]
    assert plan == task.batch_plan(0)
    _losses(store, memory, plan, lambda idx: memory.task._masked(*_pad([ids[i] for i in idx])))


@pytest.mark.parametrize("arch", ["bert", "gpt"])
def test_classify_equals_the_in_memory_path(toy_data, tmp_path, arch) -> None:
    raw = classify_config(toy_data, arch=arch)
    raw["model"] = {**raw["model"], "context": 8, "positions": "learned"}  # cuts some
    store = _trainer(raw, tmp_path / "store")
    memory = _trainer(raw, tmp_path / "memory")
    cfg, task = store.cfg, store.task
    train = read_labelled(cfg.data.train, cfg.data.format)
    old_tok = build_tokenizer("sentencepiece", train.sentences, vocab_size=cfg.data.vocab_size,
                              run_dir=None, name="text")  # fmt: skip
    assert digest_of({"text": task.tokenizers["text"]}) == digest_of({"text": old_tok})
    assert task.tokenizers["labels"].labels == sorted(set(train.labels)) == ["0", "1"]
    ids, cut = task.encode(train)  # main's: encode_batch, cut, [CLS] x [SEP] / x + end
    labels = task.label_ids(train)
    assert cut > 0 and len(ids) == len(task.store) == len(labels)
    sampler = TokenBatchSampler([(len(s), len(s)) for s in ids],
                                batch_tokens=cfg.train.batch_tokens, shuffle=True,
                                seed=cfg.train.seed)  # fmt: skip
    plan = [list(b) for b in sampler.batches(0)]
    assert plan == task.batch_plan(0)

    def old_batch(idx):
        seqs, mask = _pad([ids[i] for i in idx])
        return type(task.collate(idx[:1]))(seqs, mask, torch.tensor([labels[i] for i in idx]))

    _losses(store, memory, plan, old_batch)


def _store_names() -> set[str]:
    return {p.name for p in stores_root().iterdir() if p.name.startswith("sentences-")}


def test_a_second_run_reuses_the_store_and_a_changed_input_rebuilds_it(tmp_path) -> None:
    data = {"train": write_tsv(tmp_path / "train.tsv", toy_sentences(80, 5)),
            "valid": write_tsv(tmp_path / "valid.tsv", toy_sentences(20, 6))}  # fmt: skip
    raw = {**classify_config(data), "train": {**classify_config(data)["train"], "max_steps": 1}}
    first = _trainer(raw, tmp_path / "a")
    key = json.loads((tmp_path / "a" / "store.json").read_text())["key"]
    manifest = (stores_root() / key / "manifest.json").read_text()
    before = _store_names()
    second = _trainer(raw, tmp_path / "b")  # found, not built again
    assert second.task.store.store.key == key and _store_names() == before
    assert (stores_root() / key / "manifest.json").read_text() == manifest
    assert json.loads((tmp_path / "b" / "store.json").read_text())["key"] == key
    assert first.task.tokenizers["labels"].labels == ["0", "1"]
    write_tsv(data["train"], [*toy_sentences(80, 5)[:-1], ("a new sentence here", "2")])
    third = _trainer(raw, tmp_path / "c")  # a changed training file: another store
    assert third.task.store.store.key != key and len(_store_names()) == len(before) + 1
    assert third.task.tokenizers["labels"].labels == ["0", "1", "2"]


def test_mlm_resume_maps_the_store_the_run_recorded(toy_data, tmp_path) -> None:
    raw = mlm_config(toy_data)
    raw["train"] = {**raw["train"], "max_steps": 3, "valid_every": 3}
    run = tmp_path / "run"
    _trainer(raw, run).fit()
    key = json.loads((run / "store.json").read_text())["key"]
    before = _store_names()
    raw["train"]["max_steps"] = 5
    resumed = _trainer(raw, run, resume=True)
    assert resumed.task.store.store.key == key
    resumed.fit()
    assert _store_names() == before  # no second store


def test_a_resumed_classifier_maps_its_labels_by_name(toy_data, tmp_path) -> None:
    """Resumed with its saved label set: the store's class indices map through the names."""
    raw = classify_config(toy_data)
    task = _trainer(raw, tmp_path / "a").task
    task.tokenizers["labels"] = LabelSet(["1", "0"])  # another order than the store's
    task.class_of = task._class_map()
    batch = task.collate([0, 1, 2, 3])
    gold = [int(y) for _, y in toy_sentences(300, 1)[:4]]
    assert batch.labels.tolist() == [1 - y for y in gold]
