"""`model.arch: birnn`: the bidirectional-RNN sentence classifier (attention, mean or max
pooling over the annotations), its oracles, and the commands on a run of it."""

from __future__ import annotations

import json

import pytest
import torch

import atento
from atento.cli.main import main
from atento.config_io import config_from_dict, dump_config
from atento.models.pretrained import load_pretrained
from atento.models.rnn_classifier import RNNClassifier, RNNMaskedLM, build_birnn

from .conftest import TRAIN

BIRNN = {"arch": "birnn", "emb_size": 16, "hidden_size": 24, "dropout": 0.0,
         "attention_size": 8}  # fmt: skip


def _model(pooling: str, cell: str = "gru", layers: int = 1) -> RNNClassifier:
    torch.manual_seed(0)
    return RNNClassifier(vocab_size=30, num_classes=3, emb_size=8, hidden_size=12,
                         layers=layers, cell=cell, dropout=0.0, pooling=pooling,
                         attention_size=6).eval()  # fmt: skip


def _batch():
    ids = torch.tensor([[4, 9, 7, 5, 8], [6, 4, 0, 0, 0], [5, 5, 5, 2, 0]])
    return ids, ids != 0


@pytest.mark.parametrize("pooling", ["attention", "mean", "max"])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_a_sentence_scores_the_same_alone_and_padded_in_a_batch(pooling, cell):
    model, (ids, mask) = _model(pooling, cell, layers=2), _batch()
    batch = model(ids, mask).logits
    for i in range(ids.size(0)):
        n = int(mask[i].sum())
        alone = model(ids[i : i + 1, :n], mask[i : i + 1, :n]).logits
        torch.testing.assert_close(alone[0], batch[i], rtol=1e-5, atol=1e-6)


def test_pooling_oracles():
    ids, mask = _batch()
    model = _model("attention")
    h = model.annotations(ids, mask)
    assert torch.equal(h[1, 2:], torch.zeros(3, 12))  # PAD positions: no annotation
    a = model.attention_weights(h, mask)
    assert torch.equal(a[~mask], torch.zeros(int((~mask).sum())))  # no weight on PAD
    torch.testing.assert_close(a.sum(1), torch.ones(3))
    # e_t = u^T tanh(W h_t + b) written out, for the first sentence
    w, b, u = model.key_proj.weight, model.key_proj.bias, model.context.weight[0]
    e = torch.stack([u @ torch.tanh(w @ h[0, t] + b) for t in range(5)])
    torch.testing.assert_close(a[0], e.softmax(0))
    torch.testing.assert_close(model.pool(h, mask)[0], (a[0, :, None] * h[0]).sum(0))
    mean, top = _model("mean"), _model("max")
    torch.testing.assert_close(mean.pool(h, mask)[1], h[1, :2].mean(0))
    torch.testing.assert_close(top.pool(h, mask)[2], h[2, :4].amax(0))
    neg = -h.abs() - 1  # all annotations negative: PAD's zeros must still not win the max
    torch.testing.assert_close(top.pool(neg, mask)[1], neg[1, :2].amax(0))


def test_the_head_learns_from_every_parameter():
    model, (ids, mask) = _model("attention").train(), _batch()
    model(ids, mask).logits.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for name, p in model.named_parameters() if "embed" not in name)  # fmt: skip


@pytest.fixture(scope="module")
def birnn_run(toy_data, tmp_path_factory):
    raw = {"task": "classify",
           "data": {"train": str(toy_data["train"]), "valid": str(toy_data["valid"]),
                    "format": "sst2", "tokenizer": "sentencepiece", "vocab_size": 60},
           "model": dict(BIRNN), "train": {**TRAIN, "max_steps": 60, "valid_every": 30,
                                            "lr": 0.01},
           "runtime": {"device": "cpu"}}  # fmt: skip
    return _trained(raw, tmp_path_factory, "birnn")


def _trained(raw: dict, tmp_path_factory, name: str):
    """`atento train` of the config `raw` into a new run directory `name`."""
    out = tmp_path_factory.mktemp("runs") / name
    path = tmp_path_factory.mktemp("cfg") / f"{name}.yaml"
    dump_config(config_from_dict(raw), path)
    assert main(["train", str(path), "--out", str(out)]) == 0
    return out


def test_train_evaluate_classify_and_attention_from_the_command_line(birnn_run, toy_data,
                                                                     tmp_path, capsys):  # fmt: skip
    from PIL import Image

    capsys.readouterr()
    assert main(["evaluate", str(birnn_run), "--data", str(toy_data["valid"]), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sentences"] == 60 and report["accuracy"] >= 0.9  # a keyword task
    run = atento.load(birnn_run)
    got = run.classify(["a very good film", "the plot was dull"])
    assert [g.label for g in got] == ["1", "0"]
    # the attention pooling's weights over the pieces as the classifier reads them
    weights, rows, cols = run.self_attention("the movie was rather superb story")
    assert weights.shape == (1, len(cols)) and rows == ["[pool]"]  # one head: (rows, cols)
    assert cols[0] == "[CLS]" and cols[-1] == "[SEP]"
    torch.testing.assert_close(weights.sum(), torch.tensor(1.0))
    task = run.run.task
    ids = task.sequence(task.tokenizers["text"].encode("the movie was rather superb story"))
    assert len(ids) == len(cols)
    torch.testing.assert_close(weights, run.run.model.pooling_attention(ids)[0])
    out = tmp_path / "a.png"
    assert main(["attention", str(birnn_run), "a good film", "--out", str(out)]) == 0
    with Image.open(out) as image:
        assert image.text["atento:rows"] == "1"
    capsys.readouterr()
    bad = ["attention", str(birnn_run), "a good film", "--out", str(out), "--layer", "2"]
    assert main(bad) == 2
    assert "layer 2 out of range" in capsys.readouterr().err


def test_the_page_server_classifies_with_it(birnn_run):
    from fastapi.testclient import TestClient

    from atento.serve.app import create_app

    run = atento.load(birnn_run)
    with TestClient(create_app([run])) as c:
        r = c.post("/v1/classify", json={"texts": ["a good film", "a dull plot"]})
        assert r.status_code == 200 and [x["label"] for x in r.json()["labels"]] == ["1", "0"]
        r = c.post("/v1/attention", json={"text": "a good film"})
        assert r.status_code == 200
        models = c.get("/v1/models").json()["models"]
        assert (models[0]["layers"], models[0]["heads"]) == (1, 1)


@pytest.mark.parametrize(("override", "message"), [
    ("model.pooling=first", "model.pooling"),
    ("model.hidden_size=25", "model.hidden_size"),
    ("model.heads=4", "model.heads"),
    ("model.context=2", "model.context"),
])  # fmt: skip
def test_bad_config_is_one_line_and_exit_2(toy_data, tmp_path, capsys, override, message):
    raw = {"task": "classify",
           "data": {"train": str(toy_data["train"]), "valid": str(toy_data["valid"]),
                    "format": "sst2"},
           "model": dict(BIRNN), "train": dict(TRAIN)}  # fmt: skip
    path = tmp_path / "c.yaml"
    dump_config(config_from_dict(raw), path)
    capsys.readouterr()
    assert main(["train", str(path), override, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_mean_pooling_has_no_attention_to_draw(toy_data, tmp_path, capsys):
    raw = {"task": "classify",
           "data": {"train": str(toy_data["train"]), "valid": str(toy_data["valid"]),
                    "format": "sst2", "tokenizer": "sentencepiece", "vocab_size": 60},
           "model": {**BIRNN, "pooling": "max"}, "train": {**TRAIN, "max_steps": 2},
           "runtime": {"device": "cpu"}}  # fmt: skip
    path = tmp_path / "c.yaml"
    dump_config(config_from_dict(raw), path)
    assert main(["train", str(path), "--out", str(tmp_path / "r")]) == 0
    capsys.readouterr()
    assert main(["attention", str(tmp_path / "r"), "a good film", "--out",
                 str(tmp_path / "a.png")]) == 2  # fmt: skip
    assert "model.pooling=max has no attention weights" in capsys.readouterr().err


def test_the_masked_lm_scores_the_chosen_positions_alone_and_padded_in_a_batch():
    torch.manual_seed(0)
    model = RNNMaskedLM(vocab_size=30, emb_size=8, hidden_size=12, layers=2, cell="lstm",
                        dropout=0.0).eval()  # fmt: skip
    ids, mask = _batch()
    every = model(ids, mask)  # (B, T, V)
    chosen = torch.zeros_like(mask)
    chosen[0, 1] = chosen[1, 1] = chosen[2, 3] = True
    torch.testing.assert_close(model(ids, mask, select=chosen), every[chosen])
    n = int(mask[1].sum())
    alone = model(ids[1:2, :n], mask[1:2, :n])
    torch.testing.assert_close(alone[0], every[1, :n], rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def birnn_mlm_run(toy_data, tmp_path_factory):
    raw = {"task": "mlm",
           "data": {"train": str(toy_data["train"]), "format": "sst2",
                    "tokenizer": "sentencepiece", "vocab_size": 60, "valid_fraction": 0.1},
           "model": dict(BIRNN), "train": {**TRAIN, "max_steps": 20, "valid_every": 10,
                                            "lr": 0.01},
           "runtime": {"device": "cpu"}}  # fmt: skip
    return _trained(raw, tmp_path_factory, "birnn_mlm")


def _classify_config(toy_data, **model):
    raw = {"task": "classify",
           "data": {"train": str(toy_data["train"]), "valid": str(toy_data["valid"]),
                    "format": "sst2", "tokenizer": "sentencepiece"},
           "model": {**BIRNN, **model}, "train": {**TRAIN, "max_steps": 30, "lr": 0.01},
           "runtime": {"device": "cpu"}}  # fmt: skip
    return config_from_dict(raw)


def test_a_classifier_starts_from_the_masked_lms_encoder(birnn_mlm_run, toy_data, tmp_path,
                                                          capsys):  # fmt: skip
    capsys.readouterr()
    assert main(["evaluate", str(birnn_mlm_run), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["loss"] > 0 and 0.0 <= report["accuracy"] <= 1.0
    cfg = _classify_config(toy_data, init_from=str(birnn_mlm_run))
    pretrained = load_pretrained(cfg)
    assert pretrained.task == "mlm" and not any(k.startswith("head.") for k in pretrained.weights)
    model = build_birnn(cfg, vocab_size=pretrained.tokenizer.embedding_rows, num_classes=2,
                        pretrained=pretrained)  # fmt: skip
    encoder = model.encoder.state_dict()
    assert encoder.keys() == {k[len("encoder.") :] for k in pretrained.weights}
    assert all(torch.equal(v, pretrained.weights["encoder." + k]) for k, v in encoder.items())
    path = tmp_path / "c.yaml"
    dump_config(cfg, path)
    out = tmp_path / "cls"
    assert main(["train", str(path), "--out", str(out)]) == 0
    run = atento.load(out)  # the pretrained run's tokenizer, and every tool
    assert run.run.task.tokenizers["text"].vocab_size == pretrained.tokenizer.vocab_size
    assert [g.label for g in run.classify(["a very good film"])] in (["0"], ["1"])
    capsys.readouterr()
    assert main(["attention", str(birnn_mlm_run), "a good film", "--out",
                 str(tmp_path / "a.png")]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert "has no attention weights to show" in err and len(err.splitlines()) == 1


def test_an_init_from_of_other_shapes_is_one_line_and_exit_2(birnn_mlm_run, toy_data, tmp_path,
                                                              capsys):  # fmt: skip
    path = tmp_path / "c.yaml"
    dump_config(_classify_config(toy_data, init_from=str(birnn_mlm_run), hidden_size=32), path)
    capsys.readouterr()
    assert main(["train", str(path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    last = err.splitlines()[-1]  # after the runtime's line: one error line, no traceback
    assert last.startswith("atento train: error: config: model.hidden_size=32")
    assert "model.hidden_size=24" in last and "Traceback" not in err
    capsys.readouterr()
    assert (
        main(["train", str(path), "model.init_from=runs/none", "--out", str(tmp_path / "r")]) == 2
    )
    assert "model.init_from: run directory not found" in capsys.readouterr().err.splitlines()[-1]
