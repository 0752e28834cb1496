"""Every translation tool on an imported Marian run: translate, evaluate, beam-sweep,
search-errors, search-tree, the server's /v1/translate, and fine-tuning from it
(`model.init_from`), with outputs checked against transformers where it has the same thing."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from fastapi.testclient import TestClient

import atento
from atento.cli.main import main
from atento.config_io import config_from_dict, load_config
from atento.registry import build_model, task_class
from atento.rundir import load_run
from atento.serve import Limits, create_app

from .marian_models import hf_model, hf_tokenizer, parallel

pytest.importorskip("transformers")


@pytest.fixture
def run(marian_run):
    return marian_run


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Toy parallel files: 200 training pairs, 12 for validation and testing."""
    root = tmp_path_factory.mktemp("marian_data")
    out = {"root": root}
    for name, (n, seed) in {"train": (200, 11), "valid": (12, 12)}.items():
        src, tgt = parallel(n, seed)
        out[f"{name}_src"], out[f"{name}_tgt"] = root / f"{name}.de", root / f"{name}.en"
        out[f"{name}_src"].write_text("".join(s + "\n" for s in src), encoding="utf-8")
        out[f"{name}_tgt"].write_text("".join(t + "\n" for t in tgt), encoding="utf-8")
    out["sources"] = out["valid_src"].read_text(encoding="utf-8").splitlines()
    return out


def _generate(marian, sources, beam):
    """transformers' best outputs (ids, no start token, EOS or padding) and their texts."""
    model, tok = hf_model(marian), hf_tokenizer(marian)
    batch = tok(sources, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**batch, do_sample=False, num_beams=beam, early_stopping=True,
                             max_length=40, bad_words_ids=[[tok.pad_token_id]])  # fmt: skip
    ids = [[t for t in row[1:] if t not in (tok.eos_token_id, tok.pad_token_id)]
           for row in out.tolist()]  # fmt: skip
    return ids, tok.batch_decode(out, skip_special_tokens=True)


@pytest.mark.parametrize("beam", [1, 3])
def test_translate_equals_generate(marian, run, files, beam, tmp_path):
    ids, texts = _generate(marian, files["sources"], beam)
    model = atento.load(run, device="cpu")
    got = model.translate(files["sources"], beam=beam, alpha=1.0)
    assert [t.nbest[0].tokens for t in got] == ids
    out = tmp_path / "out.txt"
    argv = ["translate", str(run), "-i", str(files["valid_src"]), "-o", str(out)]
    assert main([*argv, "--beam", str(beam), "--alpha", "1"]) == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines == [t.nbest[0].text for t in got]
    assert [line for line, i in zip(lines, ids, strict=True) if 1 not in i] == [
        text for text, i in zip(texts, ids, strict=True) if 1 not in i
    ]  # the same text too (transformers drops an UNK that atento writes as ⁇)


def _json(capsys, argv):
    capsys.readouterr()
    assert main(argv) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_evaluate_beam_sweep_and_search_errors(run, files, capsys):
    data = ["--src", str(files["valid_src"]), "--ref", str(files["valid_tgt"])]
    report = _json(capsys, ["evaluate", str(run), *data, "--beam", "2", "--json"])
    assert report["sentences"] == 12 and 0 <= report["bleu"] <= 100
    sweep = _json(capsys, ["beam-sweep", str(run), *data, "--beams", "1,3", "--alphas", "1",
                           "--json"])  # fmt: skip
    assert [r["beam"] for r in sweep["results"]] == [1, 3]
    errors = _json(capsys, ["search-errors", str(run), *data, "--beam", "3", "--json"])
    assert errors["sentences"] == 12
    assert errors["errors"] == errors["search_errors"] + errors["model_errors"]


def test_search_tree(run, files, tmp_path, capsys):
    out = tmp_path / "tree.svg"
    sentence = files["sources"][0]
    assert main(["search-tree", str(run), sentence, "--out", str(out), "--beam", "3"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == str(out) and out.read_text().lstrip().startswith("<?xml")
    trace = atento.load(run).search_trace(sentence, beam=3)
    assert [line.split("\t")[1] for line in printed[1:]] == [n["text"] for n in trace["nbest"]]


def test_serve_translates_like_the_api(run, files):
    model = atento.load(run, device="cpu")
    with TestClient(create_app([model], Limits(max_wait_ms=2))) as client:
        r = client.post("/v1/translate", json={"texts": files["sources"][:4], "beam": 3})
        assert r.status_code == 200, r.text
        expected = model.translate(files["sources"][:4], beam=3)
        assert [t["text"] for t in r.json()["translations"]] == [t.text for t in expected]
        assert [t["nbest"][0]["score"] for t in r.json()["translations"]] == pytest.approx(
            [t.nbest[0].score for t in expected], abs=1e-5
        )


def _finetune_config(run, files, **model):
    """A translation config that starts from the imported run (its model keys as they are)."""
    imported = load_config(run / "config.yaml")
    keys = {k: v for k, v in vars(imported.model).items()}
    return {
        "task": "translation",
        "data": {"corpus": "files", "max_len": 40,
                 "train": {"src": str(files["train_src"]), "tgt": str(files["train_tgt"])},
                 "valid": {"src": str(files["valid_src"]), "tgt": str(files["valid_tgt"])}},
        "model": {**keys, "init_from": str(run), "dropout": 0.0, **model},
        "train": {"batch_tokens": 400, "lr": 0.001, "warmup_steps": 1, "max_steps": 6,
                  "valid_every": 3, "seed": 1, "label_smoothing": 0.0},
        "search": {"beam": 2, "max_len_a": 0.0, "max_len_b": 20},
        "runtime": {"device": "cpu", "precision": "fp32"},
    }  # fmt: skip


def test_finetuning_starts_from_the_imported_weights_with_transformers_loss(marian, run, files):
    """The new run's model is the imported one (tensor by tensor), its tokenizers are
    Marian's, and its training loss on a batch equals transformers' on the same pairs: the
    decoder reads PAD-start + y and predicts y + EOS 0, padding left out."""
    cfg = config_from_dict(_finetune_config(run, files))
    task = task_class(cfg.task)(cfg)
    task.prepare(None, None)
    imported = load_run(run, device="cpu")
    assert {r: t.state() for r, t in task.tokenizers.items()} == {
        r: t.state() for r, t in imported.tokenizers.items()
    }
    model = build_model(cfg, **task.model_sizes()).eval()
    mine, theirs = model.state_dict(), imported.model.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    rows = list(range(8))
    batch = task.collate(rows)
    with torch.no_grad():
        loss = task.loss(task.forward(model, batch), batch).loss / task.count(batch)
    src, tgt = parallel(200, 11)
    tok, hf = hf_tokenizer(marian), hf_model(marian)
    ref = tok([src[i] for i in rows], text_target=[tgt[i] for i in rows], return_tensors="pt",
              padding=True)  # fmt: skip
    ref["labels"][ref["labels"] == tok.pad_token_id] = -100
    with torch.no_grad():
        assert float(loss) == pytest.approx(float(hf(**ref).loss), abs=1e-4)


def test_finetuning_trains_and_decodes(run, files, tmp_path, capsys):
    config = tmp_path / "finetune.yaml"
    config.write_text(yaml.safe_dump(_finetune_config(run, files)), encoding="utf-8")
    out = tmp_path / "tuned"
    assert main(["train", str(config), "--out", str(out)]) == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows and all(r["loss"] == r["loss"] for r in rows)  # validated, finite
    tuned = load_run(out, device="cpu")
    assert tuned.tokenizers["tgt"].kind == "marian" and tuned.cfg.model.activation == "swish"
    capsys.readouterr()
    assert main(["translate", str(out), "-i", str(files["valid_src"])]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 12


def test_finetuning_refuses_other_model_keys(run, files, tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(_finetune_config(run, files, activation="relu")))
    assert main(["train", str(config), "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the runtime line
    assert err.startswith("atento train: error:")
    assert "model.activation='relu'" in err and "swish" in err
