"""The encoder, MLM masking and loss, the classifier heads, init_from, and the scores."""

from __future__ import annotations

import math

import pytest
import torch

from atento.analysis.classification import classification_report
from atento.checkpoints import find_checkpoint, load_checkpoint
from atento.config_io import config_from_dict
from atento.data.vocab import BOS_ID, EOS_ID, N_SPECIAL
from atento.errors import AtentoError
from atento.models.classifier import SentenceClassifier
from atento.models.lm import TextTransformer
from atento.registry import build_model, task_class
from atento.tasks.mlm import MaskedBatch, mask_tokens
from atento.training.loop import Trainer
from atento.training.loss import sequence_loss

from .conftest import classify_config, mlm_config, write_tsv


def _body(causal: bool, seed: int = 0) -> TextTransformer:
    torch.manual_seed(seed)
    return TextTransformer(vocab_size=20, d_model=16, heads=2, layers=2, ff_size=32, context=16,
                           causal=causal).eval()  # fmt: skip


# ---------------------------------------------------------------- masking
def test_masking_proportions_on_a_large_sample() -> None:
    """15 % chosen; of those 80 % [MASK], 10 % a random token, 10 % unchanged (5 sigma)."""
    V, mask_id = 10_004, 10_004
    ids = torch.randint(N_SPECIAL, V, (400, 500), generator=torch.Generator().manual_seed(0))
    candidates = torch.ones_like(ids, dtype=torch.bool)
    candidates[:, :3] = False  # e.g. [CLS] and padding: never chosen, never changed
    inputs, chosen = mask_tokens(ids, candidates, vocab_size=V, mask_id=mask_id,
                                 generator=torch.Generator().manual_seed(1))  # fmt: skip
    assert not chosen[:, :3].any() and torch.equal(inputs[:, :3], ids[:, :3])
    assert torch.equal(inputs[~chosen], ids[~chosen])  # unchosen tokens are left alone

    def within(count: int, n: int, p: float) -> bool:
        return abs(count - n * p) <= 5 * math.sqrt(n * p * (1 - p))

    n = int(candidates.sum())
    k = int(chosen.sum())
    assert within(k, n, 0.15)
    masked = int((inputs[chosen] == mask_id).sum())
    kept = int((inputs[chosen] == ids[chosen]).sum())
    random_ = k - masked - kept
    assert within(masked, k, 0.8) and within(kept, k, 0.1) and within(random_, k, 0.1)
    replaced = inputs[chosen & (inputs != mask_id) & (inputs != ids)]
    assert int(replaced.min()) >= N_SPECIAL and int(replaced.max()) < V  # never a special


def test_every_sentence_gets_at_least_one_chosen_token() -> None:
    ids = torch.full((50, 3), 7)
    candidates = torch.tensor([[False, True, False]] * 50)
    _, chosen = mask_tokens(ids, candidates, vocab_size=20, mask_id=20,
                            generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert chosen[:, 1].all() and not chosen[:, [0, 2]].any()


def test_mlm_loss_counts_only_the_chosen_positions(toy_data) -> None:
    cfg = config_from_dict(mlm_config(toy_data))
    task = task_class("mlm")(cfg, log=lambda *_: None)
    task.prepare(None, None)
    torch.manual_seed(0)
    model = build_model(cfg, **task.model_sizes())
    batch: MaskedBatch = task.collate(list(range(16)))
    out = task.loss(task.forward(model, batch), batch)
    assert task.count(batch) == int(batch.chosen.sum()) == batch.targets.numel() > 0
    # the same loss from the full logits at the chosen positions only
    full = model(batch.inputs, pad_mask=batch.pad_mask)  # (B, T, V)
    ref = sequence_loss(full[batch.chosen], batch.targets)
    torch.testing.assert_close(out.loss, ref, atol=1e-4, rtol=1e-5)
    # positions that were not chosen get no gradient from the loss
    logits = full.detach().requires_grad_(True)
    sequence_loss(logits[batch.chosen], batch.targets).backward()
    assert logits.grad[~batch.chosen].abs().max() == 0
    assert logits.grad[batch.chosen].abs().sum(-1).min() > 0
    # [CLS], [SEP] and padding are never chosen
    seqs = batch.inputs
    assert not batch.chosen[seqs == BOS_ID].any() and not batch.chosen[~batch.pad_mask].any()
    ends = batch.pad_mask.sum(1) - 1
    assert not batch.chosen[torch.arange(len(ends)), ends].any()
    assert bool((seqs[torch.arange(len(ends)), ends] == EOS_ID).all())


def test_mlm_drop_contained_pretrains_on_the_maximal_rows(toy_data, tmp_path) -> None:
    rows = [("a fine film", "1"), ("fine film", "1"), ("a dull plot", "0"), ("dull", "0"),
            ("the actor was great", "1"), ("great", "1"), ("was great", "1")] * 3  # fmt: skip
    path = write_tsv(tmp_path / "nested.tsv", rows)
    raw = {
        **mlm_config(toy_data),
        "data": {
            **mlm_config(toy_data)["data"],
            "train": str(path),
            "valid_fraction": 0.34,
            "tokenizer": "char",
        },
    }
    for flag, expected in ((False, 21), (True, 3)):
        raw["data"]["drop_contained"] = flag
        task = task_class("mlm")(config_from_dict(raw), log=lambda *_: None)
        task.prepare(None, None)  # the sentences as the corpus store holds them
        tok, store = task.tokenizers["text"], task.store
        rows = [store.train.row(i) for i in range(len(store.train))]
        rows += [store.valid.row(i) for i in range(len(store.valid))]
        assert len(rows) == expected and len(store.valid) == expected - int(expected * 0.66)
    kept = ["a fine film", "a dull plot", "the actor was great"]
    assert [s for s, _ in task.source().train()] == kept  # what the store streams
    assert [r.tolist() for r in rows] == [tok.encode(s) for s in kept]


# ---------------------------------------------------------------- attention direction
def test_encoder_is_bidirectional_and_gpt_causal() -> None:
    ids = torch.randint(4, 20, (2, 10))
    changed = ids.clone()
    changed[:, 7] = 4 + (changed[:, 7] - 3) % 16  # another token at position 7
    for causal in (False, True):
        body = _body(causal)
        a, b = body.hidden(ids)[0], body.hidden(changed)[0]
        earlier_changed = not torch.allclose(a[:, :7], b[:, :7])
        assert earlier_changed == (not causal)
        assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_padding_changes_no_prediction() -> None:
    torch.manual_seed(0)
    for causal, pooling in ((False, "mean"), (False, "cls"), (True, "last")):
        model = SentenceClassifier(body=_body(causal), num_classes=3, pooling=pooling).eval()
        ids = torch.tensor([[2, 5, 6, 7, 3]])
        padded = torch.tensor([[2, 5, 6, 7, 3, 0, 0]])
        a = model(ids, torch.ones_like(ids, dtype=torch.bool)).logits
        b = model(padded, padded != 0).logits
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- config sections
COMMON = {"d_model": 128, "heads": 4, "layers": 4, "ff_size": 512, "attention_dropout": 0.0,
          "positions": "learned", "init_from": "",
          # the variants of imported models (atento.hf), atento's own stack by default
          "pre_norm": True, "activation": "relu", "norm_eps": 1e-5, "embed_norm": False,
          "type_vocab": 0, "head_transform": False, "output_bias": False,
          "pooler": False}  # fmt: skip


@pytest.mark.parametrize("task, arch, own", [
    ("lm", "gpt", {"dropout": 0.0, "context": 64}),
    ("mlm", "bert", {"dropout": 0.1, "context": 128, "pooling": "mean"}),
])  # fmt: skip
def test_gpt_and_bert_sections_keep_their_keys_and_defaults(task, arch, own) -> None:
    """Both are a TextTransformerConfig; a run directory's model section reads back as it was."""
    from dataclasses import asdict

    from atento.models.text import TextTransformerConfig

    data = {"train": "t.txt", "valid": "v.txt"}
    model = config_from_dict({"task": task, "data": data, "model": {"arch": arch}}).model
    assert isinstance(model, TextTransformerConfig)
    assert asdict(model) == {"arch": arch, **COMMON, **own}
    assert list(asdict(model))[:3] == ["arch", "d_model", "heads"]  # the YAML's key order
    with pytest.raises(AtentoError, match="model.pooling"):
        config_from_dict({"task": task, "data": data, "model": {"arch": arch, "pooling": "last"}})


# ---------------------------------------------------------------- init_from
def test_init_from_copies_the_encoder_weights_exactly(toy_data, mlm_run, tmp_path) -> None:
    cfg = config_from_dict(classify_config(toy_data), [f"model.init_from={mlm_run}"])
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    pretrained = load_checkpoint(find_checkpoint(mlm_run, "best")).model
    body = trainer.model.body.state_dict()
    assert set(body) == set(pretrained)
    for key, value in pretrained.items():
        assert torch.equal(body[key], value), key
    # the run keeps the pretrained tokenizer: the same pieces get the same ids
    tok = load_checkpoint(find_checkpoint(mlm_run, "best")).tokenizers["text"]
    assert trainer.task.tokenizers["text"].state() == tok.state()


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.d_model=64", "model.d_model=64 but model.init_from="),
        ("data.tokenizer=char", "data.tokenizer=char but model.init_from="),
        ("model.arch=gpt", "model.arch=gpt needs a run of the same architecture"),
    ],
)
def test_init_from_refuses_what_does_not_fit(toy_data, mlm_run, tmp_path, override,
                                             message) -> None:  # fmt: skip
    cfg = config_from_dict(classify_config(toy_data), [f"model.init_from={mlm_run}", override])
    with pytest.raises(AtentoError, match=message.replace(".", r"\.")):
        Trainer(cfg, tmp_path / "run", progress=False)


# ---------------------------------------------------------------- scores
def test_macro_f1_and_confusion_matrix_by_hand() -> None:
    gold = [0, 0, 0, 1, 1, 2]
    pred = [0, 0, 1, 1, 2, 2]
    report = classification_report(gold, pred, ["a", "b", "c", "d"])
    assert report["confusion_matrix"] == [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0] * 4]
    # F1 = 2 tp / (gold + predicted): a 4/5, b 2/4, c 2/3; d (absent everywhere) left out
    assert report["f1"] == pytest.approx({"a": 0.8, "b": 0.5, "c": 2 / 3})
    assert report["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert report["accuracy"] == pytest.approx(4 / 6)
    sklearn = pytest.importorskip("sklearn.metrics")
    assert report["macro_f1"] == pytest.approx(sklearn.f1_score(gold, pred, average="macro"))
