"""Captioning through the command line: train (the unchanged loop), caption, attention
overlay, evaluate, search-errors and beam-sweep; bad input exits 2 with one line."""

import json

import pytest
from PIL import Image

from atento.cli.main import main
from conftest import CONFIGS, caption_overrides


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def dev_images(flickr):
    return [flickr / "images" / n for n in (flickr / "dev.txt").read_text().split()]


def test_train_writes_a_run_with_bleu_metrics(caption_run):
    rows = [json.loads(x) for x in (caption_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [4, 8]
    assert {"loss", "ppl", "bleu", "bleu1", "bleu2", "bleu3"} <= set(rows[0])
    assert (caption_run / "checkpoint_best" / "meta.json").is_file()


def test_train_command_runs(flickr_mini, tmp_path, capsys):
    overrides = caption_overrides(flickr_mini, tmp_path / "cache")
    overrides = [o if not o.startswith("train.max_steps") else "train.max_steps=2"
                 for o in overrides]  # fmt: skip
    code, out, _ = run_cli(["train", CONFIGS / "flickr8k_caption.yaml", *overrides,
                            "train.valid_every=2", "--out", tmp_path / "run"], capsys)  # fmt: skip
    assert code == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert result["steps"] == 2 and result["metric"] == "bleu"


def test_caption_prints_one_caption_per_image(caption_run, flickr_mini, capsys):
    images = dev_images(flickr_mini)
    code, out, _ = run_cli(["caption", caption_run, *images, "--beam", "3", "--alpha", "0.5"],
                           capsys)  # fmt: skip
    assert code == 0
    lines = out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(p) for p in images]
    assert all(line.split("\t")[1].strip() for line in lines)
    # the same image alone gets the same caption
    code, alone, _ = run_cli(["caption", caption_run, images[1], "--beam", "3", "--alpha", "0.5"],
                             capsys)  # fmt: skip
    assert alone.splitlines() == lines[1:]


def test_one_bad_image_does_not_stop_the_others(caption_run, flickr_mini, tmp_path, capsys):
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    good = dev_images(flickr_mini)[0]
    code, out, err = run_cli(["caption", caption_run, text, good, tmp_path / "gone.jpg"], capsys)
    assert code == 2
    assert [line.split("\t")[0] for line in out.splitlines()] == [str(good)]
    errors = err.strip().splitlines()
    assert len(errors) == 2 and all(e.startswith("atento caption: error: ") for e in errors)
    assert "not an image" in errors[0] and "gone.jpg" in errors[1]


@pytest.mark.parametrize("kind", ["missing", "text"])
def test_single_bad_image_is_one_line_exit_2(caption_run, tmp_path, capsys, kind):
    path = tmp_path / "x.jpg"
    if kind == "text":
        path.write_text("hello")
    for command in (["caption", caption_run, path],
                    ["attention", caption_run, path, "--out", tmp_path / "a.png"]):  # fmt: skip
        code, out, err = run_cli(command, capsys)
        assert code == 2 and out == ""
        assert len(err.strip().splitlines()) == 1 and str(path) in err


def test_attention_overlay_png(caption_run, flickr_mini, tmp_path, capsys):
    image = dev_images(flickr_mini)[0]
    out_png = tmp_path / "x.png"
    code, out, _ = run_cli(["attention", caption_run, image, "--out", out_png, "--beam", "2"],
                           capsys)  # fmt: skip
    assert code == 0 and out.startswith(f"{out_png}\t{image}\t")
    with Image.open(out_png) as png:
        rows, cols = int(png.text["atento:rows"]), int(png.text["atento:cols"])
    caption = out.rstrip("\n").split("\t")[2]
    assert cols == 49 and rows in (len(caption.split()), len(caption.split()) + 1)


def test_evaluate_json_reports_bleu_1_to_4(caption_run, capsys):
    args = ["evaluate", caption_run, "--split", "dev", "--beam", "3", "--json", "--no-meteor"]
    code, out, _ = run_cli(args, capsys)
    assert code == 0
    report = json.loads(out)
    assert report["task"] == "caption" and report["images"] == 2 and report["references"] == 10
    assert report["beam"] == 3 and "nrefs:5" in report["bleu_signature"]
    for n in (1, 2, 3, 4):
        assert 0.0 <= report[f"bleu{n}"] <= 100.0
        assert 0.0 <= report[f"coco_bleu{n}"] <= 100.0
    assert report["bleu"] == report["bleu4"]
    assert 0.0 <= report["cider_d"] <= 1000.0 and "pycocoevalcap" in report["coco_signature"]
    assert report["meteor"] is None and "--no-meteor" in report["meteor_note"]


def test_evaluate_says_why_meteor_is_missing_without_java(caption_run, capsys, monkeypatch):
    from atento.analysis import coco_caption

    monkeypatch.setattr(coco_caption.shutil, "which", lambda name: None)
    code, out, _ = run_cli(["evaluate", caption_run, "--split", "dev", "--json"], capsys)
    report = json.loads(out)
    assert code == 0 and report["meteor"] is None and "needs java" in report["meteor_note"]
    code, out, _ = run_cli(["evaluate", caption_run, "--split", "dev"], capsys)
    assert code == 0 and "coco-caption: BLEU-1 " in out and "CIDEr-D " in out
    assert "METEOR - (needs java" in out


def test_evaluate_tsv_skips_missing_or_strict_fails(caption_run, flickr_mini, tmp_path, capsys):
    good = dev_images(flickr_mini)[0]
    tsv = tmp_path / "c.tsv"
    tsv.write_text(f"{good.name}\ta dog .\nmissing.jpg\ta cat .\n")
    args = ["evaluate", caption_run, "--captions", tsv, "--images", good.parent]
    args += ["--json", "--no-meteor"]
    code, out, err = run_cli(args, capsys)
    assert code == 0 and json.loads(out)["images"] == 1 and json.loads(out)["skipped"] == 1
    assert "1 image(s) missing" in err
    code, out, err = run_cli([*args, "--strict"], capsys)
    assert code == 2 and "missing.jpg" in err and len(err.strip().splitlines()) == 1


def test_search_errors_accepts_a_captioning_run(caption_run, capsys):
    code, out, _ = run_cli(["search-errors", caption_run, "--split", "dev", "--beam", "2",
                            "--beams", "1,2", "--json"], capsys)  # fmt: skip
    assert code == 0
    report = json.loads(out)
    assert report["sentences"] == 2 and report["beam"] == 2
    assert report["errors"] == report["search_errors"] + report["model_errors"]
    assert [row["beam"] for row in report["by_beam"]] == [1, 2]


def test_beam_sweep_accepts_a_captioning_run(caption_run, tmp_path, capsys):
    code, out, _ = run_cli(["beam-sweep", caption_run, "--split", "dev", "--beams", "1,3",
                            "--json", "--plot", tmp_path / "s.png"], capsys)  # fmt: skip
    assert code == 0
    report = json.loads(out)
    assert report["sentences"] == 2 and [p["beam"] for p in report["results"]] == [1, 3]
    assert (tmp_path / "s.png").is_file()


def test_translation_commands_still_need_src_and_ref(caption_run, toy_run, capsys):
    for command in ("search-errors", "beam-sweep"):
        code, _, err = run_cli([command, toy_run], capsys)
        assert code == 2 and "--src FILE and --ref FILE" in err
