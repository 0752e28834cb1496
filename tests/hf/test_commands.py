"""Every tool on imported models: greedy search and KV-cached sampling against transformers,
attention weights against its own, classify / evaluate, the server, and fine-tuning."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from fastapi.testclient import TestClient

import atento
from atento.checkpoints import find_checkpoint, load_checkpoint
from atento.cli.main import main
from atento.config_io import config_from_dict
from atento.options import SampleOptions
from atento.rundir import load_run
from atento.serve.app import create_app
from atento.training.loop import Trainer

pytest.importorskip("transformers")

from .conftest import PROBES, TEXTS, transformers

PROMPTS = ["Héllo   wörld", "the quick", "Straße Ελληνικά 日本語 and", "A line\nand"]


def _gpt2(gpt2_dir):
    return transformers.GPT2LMHeadModel.from_pretrained(gpt2_dir, attn_implementation="eager")


def test_gpt2_greedy_search_equals_generate(gpt2_dir, gpt2_run):
    """`translate --beam 1` on a language model (greedy, finishing at EOS) against
    generate(do_sample=False) with the same length limit; the EOS bias of the test model
    makes some prompts finish early."""
    model = atento.load(gpt2_run)
    theirs = _gpt2(gpt2_dir).eval()
    tok = model.run.tokenizers["text"]
    cfg = model.run.cfg.search
    finished = 0
    for prompt, out in zip(PROMPTS, model.translate(PROMPTS, beam=1), strict=True):
        ids = torch.tensor([tok.encode(prompt)])
        limit = int(-(-(cfg.max_len_a * ids.size(1) + cfg.max_len_b) // 1))
        ref = theirs.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                              max_new_tokens=limit, eos_token_id=tok.eos_id,
                              pad_token_id=tok.eos_id)[0, ids.size(1):].tolist()  # fmt: skip
        if tok.eos_id in ref:
            ref = ref[: ref.index(tok.eos_id) + 1]
            finished += 1
        best = out.nbest[0]  # its tokens leave the EOS out; `finished` says it was drawn
        assert best.tokens + [tok.eos_id] * best.finished == ref, prompt
    assert 0 < finished < len(PROMPTS)  # the finishing rule ran, and so did the length limit


def _greedy_reference(theirs, ids: list[int], n: int) -> list[int]:
    """transformers' model, re-read whole at each step, argmax: n new tokens (EOS included)."""
    x = torch.tensor([ids])
    with torch.no_grad():
        for _ in range(n):
            x = torch.cat([x, theirs(x).logits[:, -1].argmax(-1, keepdim=True)], 1)
    return x[0, len(ids) :].tolist()


def test_gpt2_greedy_sampling_with_the_packed_output_layer(gpt2_dir, gpt2_run, monkeypatch):
    """Every product of the cached step through oneDNN-packed weights, the query, key and
    value maps fused into one (`atento.kernels`; the suite otherwise keeps F.linear), gives
    transformers' greedy tokens too."""
    monkeypatch.setenv("ATENTO_DECODE_KERNEL", "packed")
    run = atento.load(gpt2_run)
    theirs = _gpt2(gpt2_dir).eval()
    tok = run.run.tokenizers["text"]
    rows = run.predictor.sample(PROMPTS, SampleOptions(max_new=12, temperature=0.0))
    for prompt, row in zip(PROMPTS, rows, strict=True):
        assert row == _greedy_reference(theirs, tok.encode(prompt), 12)


def test_gpt2_kv_cached_sampling_equals_transformers(gpt2_dir, gpt2_run, capsys):
    run = atento.load(gpt2_run)
    theirs = _gpt2(gpt2_dir).eval()
    tok = run.run.tokenizers["text"]
    greedy = SampleOptions(max_new=12, temperature=0.0)
    rows = run.predictor.sample(PROMPTS, greedy)  # one batch, left-padded prompts
    for prompt, row in zip(PROMPTS, rows, strict=True):
        assert row == _greedy_reference(theirs, tok.encode(prompt), 12)
    drawn = SampleOptions(max_new=12, temperature=1.0, top_k=20, seed=3)
    uncached = SampleOptions(max_new=12, temperature=1.0, top_k=20, seed=3, use_cache=False)
    assert run.predictor.sample(PROMPTS, drawn) == run.predictor.sample(PROMPTS, uncached)
    code = main(["sample", str(gpt2_run), "--prompt", PROMPTS[0], "--max-new", "12",
                 "--temperature", "0"], guard=False)  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and tok.decode(rows[0]) in out


def test_attention_equals_transformers_for_any_layer_and_head(gpt2_dir, gpt2_run, bert_dirs,
                                                              bert_runs, tmp_path):  # fmt: skip
    text = PROBES[0]
    cases = [(gpt2_run, _gpt2(gpt2_dir), False),
             (bert_runs["classify"], transformers.BertForSequenceClassification.from_pretrained(
                 bert_dirs["classify"], attn_implementation="eager"), True)]  # fmt: skip
    for run_dir, theirs, specials in cases:
        model = atento.load(run_dir)
        tok = model.run.tokenizers["text"]
        ids = tok.encode(text)
        ids = [tok.bos_id, *ids, tok.eos_id] if specials else ids
        with torch.no_grad():
            ref = theirs.eval()(torch.tensor([ids]), output_attentions=True).attentions
        for layer in (0, 1):
            for head in (0, 3):
                ours = model.self_attention(text, layer=layer, head=head)[0]
                assert torch.allclose(ours, ref[layer][0, head], atol=1e-5)
        png = tmp_path / f"{run_dir.name}.png"
        assert main(["attention", str(run_dir), text, "--layer", "1", "--head", "2", "--out",
                     str(png)], guard=False) == 0 and png.stat().st_size > 0  # fmt: skip


def test_bert_classify_and_evaluate(bert_dirs, bert_runs, tmp_path, capsys):
    theirs = transformers.BertForSequenceClassification.from_pretrained(bert_dirs["classify"])
    fast = transformers.AutoTokenizer.from_pretrained(bert_dirs["classify"])
    names = ["neg", "pos"]
    src = tmp_path / "in.txt"
    src.write_text("".join(p.replace("\n", " ") + "\n" for p in PROBES), encoding="utf-8")
    enc = fast([p.replace("\n", " ") for p in PROBES], padding=True, return_tensors="pt")
    with torch.no_grad():
        probs = theirs.eval()(**enc).logits.softmax(-1)
    assert main(["classify", str(bert_runs["classify"]), "-i", str(src)], guard=False) == 0
    lines = capsys.readouterr().out.splitlines()
    for line, p in zip(lines, probs, strict=True):
        label, prob = line.split("\t")
        assert label == names[int(p.argmax())] and abs(float(prob) - float(p.max())) < 1e-4
    gold = [names[int(p.argmax())] if i % 2 else names[1 - int(p.argmax())]
            for i, p in enumerate(probs)]  # fmt: skip
    data = tmp_path / "gold.tsv"
    data.write_text(
        "sentence\tlabel\n"
        + "".join(f"{s.replace(chr(10), ' ')}\t{g}\n" for s, g in zip(PROBES, gold, strict=True))
    )
    assert main(["evaluate", str(bert_runs["classify"]), "--data", str(data), "--json"],
                guard=False) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert report["accuracy"] == round(sum(i % 2 for i in range(len(PROBES))) / len(PROBES), 4)


def test_serve_routes_on_imported_runs(gpt2_run, bert_runs):
    lm, cls = atento.load(gpt2_run), atento.load(bert_runs["classify"])
    with TestClient(create_app([lm, cls])) as c:
        r = c.post("/v1/sample", json={"prompt": PROMPTS[0], "max_new": 6, "temperature": 0})
        assert r.status_code == 200
        r = c.post("/v1/classify", json={"texts": PROBES[:2]})
        assert r.status_code == 200
        assert [x["label"] for x in r.json()["labels"]] == [x.label for x in
                                                             cls.classify(PROBES[:2])]  # fmt: skip
        r = c.post("/v1/attention", json={"text": PROBES[0], "model": cls.name, "layer": 1,
                                          "head": 3})  # fmt: skip
        assert r.status_code == 200, r.text


def _model_keys(run) -> list[str]:
    """The imported run's model section as overrides (a fine-tuning config repeats them)."""
    model = yaml.safe_load((run / "config.yaml").read_text())["model"]
    return [f"model.{k}={v}" for k, v in model.items() if k != "init_from"]


TRAIN = {"batch_tokens": 400, "lr": 1e-4, "warmup_steps": 2, "max_steps": 4, "valid_every": 2,
         "seed": 1}  # fmt: skip


def test_fine_tuning_bert_for_classification_from_an_imported_run(bert_runs, toy_data,
                                                                  tmp_path):  # fmt: skip
    """From BertModel, whose pooler travels into the classifier (BertForMaskedLM has none)."""
    raw = {"task": "classify", "data": {"train": str(toy_data["train"]),
                                        "valid": str(toy_data["valid"]), "format": "sst2"},
           "train": TRAIN, "runtime": {"device": "cpu"}}  # fmt: skip
    run = bert_runs["base"]
    cfg = config_from_dict(raw, [*_model_keys(run), f"model.init_from={run}"])
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    imported = load_checkpoint(find_checkpoint(run, "best")).model
    body = trainer.model.body.state_dict()
    assert all(torch.equal(body[k], v) for k, v in imported.items()) and "pooler.weight" in body
    trainer.fit()
    assert main(["evaluate", str(tmp_path / "run"), "--json"], guard=False) == 0


def test_fine_tuning_gpt2_on_plain_text(gpt2_run, tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("\n".join(TEXTS), encoding="utf-8")
    raw = {"task": "lm", "data": {"train": str(text), "block_size": 16}, "train": TRAIN,
           "runtime": {"device": "cpu"}}  # fmt: skip
    cfg = config_from_dict(raw, [*_model_keys(gpt2_run), f"model.init_from={gpt2_run}"])
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    imported = load_checkpoint(find_checkpoint(gpt2_run, "best")).model
    mine = trainer.model.state_dict()
    assert all(torch.equal(mine[k], v) for k, v in imported.items())
    trainer.fit()
    tuned = load_run(tmp_path / "run")
    assert tuned.tokenizers["text"].state() == load_run(gpt2_run).tokenizers["text"].state()
    assert main(["sample", str(tmp_path / "run"), "--prompt", "hello", "--max-new", "5"],
                guard=False) == 0  # fmt: skip


def test_gpt2_evaluate_equals_transformers_loss(gpt2_dir, gpt2_run, tmp_path, capsys):
    """`evaluate --text` on a text of one window: the library's own LM loss (labels=ids)."""
    text = tmp_path / "text.txt"
    text.write_text(PROBES[0] + "\n" + PROBES[2], encoding="utf-8")
    assert main(["evaluate", str(gpt2_run), "--text", str(text), "--json"], guard=False) == 0
    report = json.loads(capsys.readouterr().out)
    tok = load_run(gpt2_run).tokenizers["text"]
    ids = torch.tensor([tok.encode(text.read_text(encoding="utf-8"))])
    with torch.no_grad():
        ref = _gpt2(gpt2_dir).eval()(ids, labels=ids).loss
    capsys.readouterr()  # the library's loading messages
    assert report["tokens"] == ids.size(1) - 1 and abs(report["loss"] - float(ref)) < 1e-4
    # without --text, the imported run has no validation data of its own: one line says so
    assert main(["evaluate", str(gpt2_run)], guard=False) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "imported model" in err[0]
