"""The commands end to end: train (MLM -> classify with init_from; GPT LM -> GPT classifier),
classify, evaluate --json, and bad input with exit status 2."""

from __future__ import annotations

import json

import pytest
import torch

from atento.cli.main import main
from atento.config_io import config_from_dict, dump_config
from atento.data.labelled import read_labelled
from atento.rundir import load_run
from atento.tasks.classify import predict

from .conftest import TINY, TRAIN, classify_config, mlm_config


def _run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _config(tmp_path, raw, name):
    path = tmp_path / f"{name}.yaml"
    dump_config(config_from_dict(raw), path)
    return path


def test_mlm_then_classify_then_evaluate_from_the_command_line(toy_data, tmp_path,
                                                                capsys) -> None:  # fmt: skip
    mlm = _config(tmp_path, mlm_config(toy_data), "mlm")
    code, out, _ = _run(["train", mlm, "--out", tmp_path / "mlm"], capsys)
    assert code == 0 and json.loads(out.splitlines()[-1])["metric"] == "loss"
    cls = _config(tmp_path, classify_config(toy_data), "cls")
    code, out, _ = _run(["train", cls, f"model.init_from={tmp_path / 'mlm'}",
                         "train.max_steps=30", "--out", tmp_path / "cls"], capsys)  # fmt: skip
    summary = json.loads(out.splitlines()[-1])
    assert code == 0 and summary["metric"] == "accuracy"
    # a classifier's throughput is in sentences, and says so
    assert summary["sentences_per_second"] > 0 and "tokens_per_second" not in summary
    rows = (tmp_path / "cls" / "metrics.jsonl").read_text().splitlines()
    assert all(json.loads(r)["train_sentences_per_second"] > 0 for r in rows)
    assert not any("train_tokens_per_second" in json.loads(r) for r in rows)
    code, out, _ = _run(["evaluate", tmp_path / "cls", "--data", toy_data["valid"], "--json"],
                        capsys)  # fmt: skip
    report = json.loads(out)
    assert code == 0 and report["task"] == "classify" and report["sentences"] == 60
    assert report["labels"] == ["0", "1"]
    assert sum(map(sum, report["confusion_matrix"])) == 60
    assert 0 <= report["macro_f1"] <= 1 and report["accuracy"] > 0.5


def test_classify_prints_the_argmax_of_evaluates_predictions(bert_run, toy_data, tmp_path,
                                                             capsys) -> None:  # fmt: skip
    rows = toy_data["valid"].read_text(encoding="utf-8").splitlines()[1:]
    sentences = [r.rsplit("\t", 1)[0].strip() for r in rows]
    gold = [r.rsplit("\t", 1)[1] for r in rows]
    src = tmp_path / "in.txt"
    src.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    code, out, _ = _run(["classify", bert_run, "-i", src], capsys)
    lines = out.splitlines()
    assert code == 0 and len(lines) == len(sentences)
    labels = [line.split("\t")[0] for line in lines]
    probs = [float(line.split("\t")[1]) for line in lines]
    run = load_run(bert_run)
    seqs = [run.task.sequence(ids) for ids in run.tokenizers["text"].encode_batch(sentences)]
    p = predict(run.model, seqs, run.placement)
    names = run.tokenizers["labels"].labels
    assert labels == [names[i] for i in p.argmax(-1).tolist()]
    assert probs == pytest.approx(p.max(-1).values.tolist(), abs=1e-4)
    code, out, _ = _run(["evaluate", bert_run, "--data", toy_data["valid"], "--json"], capsys)
    report = json.loads(out)
    predicted_counts = [sum(col) for col in zip(*report["confusion_matrix"], strict=True)]
    assert predicted_counts == [labels.count(name) for name in names]
    accuracy = sum(a == b for a, b in zip(labels, gold, strict=True)) / len(gold)
    assert report["accuracy"] == pytest.approx(accuracy)


def test_one_output_line_per_input_line_with_empty_lines(bert_run, tmp_path, capsys) -> None:
    src = tmp_path / "in.txt"
    src.write_text("a great film\n\n   \nthe plot was dull\n\n", encoding="utf-8")
    code, out, _ = _run(["classify", bert_run, "-i", src], capsys)
    lines = out.split("\n")[:-1]
    assert code == 0 and len(lines) == 5
    assert lines[1] == lines[2] == lines[4] == "" and lines[0] and lines[3]
    code, _, err = _run(["classify", bert_run, "-i", src, "--on-empty", "error"], capsys)
    assert code == 2 and "in.txt:2: empty line" in err
    long = tmp_path / "long.txt"
    long.write_text("good " * 100 + "\nbad\n", encoding="utf-8")
    code, _, err = _run(["classify", bert_run, "-i", long], capsys)
    assert code == 2 and "long.txt:1:" in err and "--on-too-long truncate" in err
    code, out, _ = _run(["classify", bert_run, "-i", long, "--on-too-long", "truncate"], capsys)
    assert code == 0 and len(out.splitlines()) == 2


@pytest.mark.parametrize(
    "content, message",
    [
        (b"sentence\tlabel\ngood film \t1\nno label\n", "bad.tsv:3: no label"),
        (b"sentence\tlabel\ngood film \t1\nbad film \tneutral\n",
         "bad.tsv:3: label 'neutral' is not one the model knows (0, 1)"),
        (b"", "bad.tsv: empty file"),
        (b"sentence\tlabel\ngood \xe9 film \t1\n", "bad.tsv:2: invalid UTF-8"),
    ],
)  # fmt: skip
def test_evaluate_bad_input_exits_2_naming_file_and_line(bert_run, tmp_path, capsys, content,
                                                        message) -> None:  # fmt: skip
    bad = tmp_path / "bad.tsv"
    bad.write_bytes(content)
    code, out, err = _run(["evaluate", bert_run, "--data", bad, "--json"], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err


def test_bad_utf8_and_an_unknown_validation_label(bert_run, toy_data, tmp_path, capsys) -> None:
    src = tmp_path / "in.txt"
    src.write_bytes(b"fine\nbad \xff\n")
    code, _, err = _run(["classify", bert_run, "-i", src], capsys)
    assert code == 2 and "in.txt:2: invalid UTF-8" in err
    code, out, _ = _run(["classify", bert_run, "-i", src, "--on-bad-utf8", "replace"], capsys)
    assert code == 0 and len(out.splitlines()) == 2
    valid = tmp_path / "valid.tsv"
    valid.write_text("sentence\tlabel\ngood \t1\nmeh \t2\n", encoding="utf-8")
    cfg = _config(tmp_path, classify_config(toy_data), "c")
    code, _, err = _run(["train", cfg, f"data.valid={valid}", "--out", tmp_path / "r"], capsys)
    assert code == 2 and "valid.tsv:3: label '2' is not one the model knows" in err


def test_gpt_fine_tuning_with_the_auxiliary_lm_loss(toy_data, tmp_path, capsys) -> None:
    text = tmp_path / "text.txt"
    rows = toy_data["train"].read_text(encoding="utf-8").splitlines()[1:]
    text.write_text("".join(r.rsplit("\t", 1)[0].strip() + "\n" for r in rows), encoding="utf-8")
    lm = {"task": "lm", "data": {"train": str(text), "tokenizer": "sentencepiece",
                                 "vocab_size": 60, "block_size": 16},
          "model": {"arch": "gpt", **TINY}, "train": dict(TRAIN),
          "runtime": {"device": "cpu"}}  # fmt: skip
    code, _, _ = _run(["train", _config(tmp_path, lm, "lm"), "--out", tmp_path / "lm"], capsys)
    assert code == 0
    raw = classify_config(toy_data, arch="gpt", lm_weight=0.5)
    raw["model"]["init_from"] = str(tmp_path / "lm")
    cfg = config_from_dict(raw)
    from atento.training.loop import Trainer

    trainer = Trainer(cfg, tmp_path / "gpt", progress=False)
    lm_weights = load_run(tmp_path / "lm").model.state_dict()
    for key, value in lm_weights.items():  # the LM's weights, exactly
        assert torch.equal(trainer.model.body.state_dict()[key], value), key
    batch = trainer.task.collate(list(range(8)))
    out = trainer.task.loss(trainer.task.forward(trainer.model, batch), batch)
    assert trainer.task.count(batch) == 8 and set(out.extras) == {"classification", "lm"}
    extras = {k: float(v) for k, v in out.extras.items()}
    expected = 8 * (extras["classification"] + 0.5 * extras["lm"])
    assert float(out.loss.detach()) == pytest.approx(expected, rel=1e-4)
    # the last real token (the end token) is the one classified
    assert all(int(row[m].tolist()[-1]) == 3 for row, m in zip(batch.ids, batch.pad_mask,
                                                               strict=True))  # fmt: skip
    trainer.fit()
    src = tmp_path / "in.txt"
    src.write_text("a great film\n\nthe plot was dull\n", encoding="utf-8")
    code, out, _ = _run(["classify", tmp_path / "gpt", "-i", src], capsys)
    assert code == 0 and len(out.split("\n")[:-1]) == 3
    code, out, _ = _run(["evaluate", tmp_path / "gpt", "--json"], capsys)
    assert code == 0 and json.loads(out)["sentences"] == 60


def test_evaluate_an_mlm_run(mlm_run, tmp_path, capsys) -> None:
    text = tmp_path / "t.txt"
    text.write_text("the movie was good\nthe plot was dull\n", encoding="utf-8")
    code, out, _ = _run(["evaluate", mlm_run, "--text", text, "--json"], capsys)
    report = json.loads(out)
    assert code == 0 and report["task"] == "mlm" and report["sentences"] == 2
    assert report["loss"] > 0 and 0 <= report["accuracy"] <= 1
    code, out, _ = _run(["evaluate", mlm_run, "--json"], capsys)  # its validation sentences
    report = json.loads(out)
    data = load_run(mlm_run).cfg.data
    excluded = set(read_labelled(data.exclude, "sst2").sentences)
    n = sum(s not in excluded for s in read_labelled(data.train, "sst2").sentences)
    assert code == 0 and report["text"] == "validation" and report["sentences"] == n - int(n * 0.95)


def test_attention_draws_a_classified_sentence(bert_run, tmp_path, capsys) -> None:
    from PIL import Image

    import atento

    out = tmp_path / "a.png"
    sentence = "good fine film"
    assert main(["attention", str(bert_run), sentence, "--out", str(out), "--head", "0"]) == 0
    weights, rows, cols = atento.load(bert_run).self_attention(sentence, head=0)
    assert rows[0] == "[CLS]" and rows[-1] == "[SEP]" and rows == cols
    assert (weights.triu(diagonal=1) > 0).any()  # an encoder: earlier positions see later ones
    torch.testing.assert_close(weights.sum(-1), torch.ones(len(rows)))
    with Image.open(out) as image:
        assert image.text["atento:rows"] == str(len(rows))
    capsys.readouterr()
    assert main(["attention", str(bert_run), sentence, "--out", str(out), "--layer", "9"]) == 2
    assert "layer 9 out of range" in capsys.readouterr().err


def test_api_classify_matches_the_command(bert_run, capsys, monkeypatch) -> None:
    import io

    import atento

    lines = ["good fine film", "bad dull plot"]
    got = atento.load(bert_run).classify(lines)
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    assert main(["classify", str(bert_run)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed == [f"{g.label}\t{g.probability:.4f}" for g in got]
    assert all(abs(sum(g.probabilities.values()) - 1) < 1e-5 for g in got)


def test_evaluate_text_report_columns_fit_the_widest_count(toy_data, capsys) -> None:
    from atento.tasks.classify import ClassifyTask

    task = ClassifyTask(config_from_dict(classify_config(toy_data)))
    report = {"data": "valid.tsv", "accuracy": 0.9, "macro_f1": 0.8, "sentences": 5570,
              "labels": ["0", "1"], "confusion_matrix": [[69, 489], [12, 5000]]}  # fmt: skip
    task.print_report(report)
    lines = capsys.readouterr().out.splitlines()
    # the first column fits "gold \ predicted" (16 + 2); the others the widest of the labels
    # and counts (4 digits of 5000, + 2): 69 and 489 stay apart
    assert lines[1:] == [
        "gold \\ predicted  " + "     0" + "     1",
        "0" + " " * 17 + "    69" + "   489",
        "1" + " " * 17 + "    12" + "  5000",
    ]
    assert [line.split() for line in lines[2:]] == [["0", "69", "489"], ["1", "12", "5000"]]
