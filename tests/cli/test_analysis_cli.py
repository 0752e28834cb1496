"""The analysis subcommands through the CLI on the tiny `toy_run` directory; bad input -> 2."""

import json
import math
from pathlib import Path

import pytest
from PIL import Image

from atento.cli.main import main
from atento.config_io import load_config
from atento.data.corpus import load_split


@pytest.fixture(scope="module")
def files(toy_run, tmp_path_factory):
    """12 held-out dates of the toy run, as --src / --ref files, plus some bad inputs."""
    pairs = load_split(load_config(toy_run / "config.yaml").data, "test")[:12]
    root = tmp_path_factory.mktemp("analysis_cli")
    src, ref = root / "test.src", root / "test.ref"
    src.write_text("".join(s + "\n" for s, _ in pairs), encoding="utf-8")
    ref.write_text("".join(t + "\n" for _, t in pairs), encoding="utf-8")
    short = root / "short.ref"
    short.write_text("".join(t + "\n" for _, t in pairs[:5]), encoding="utf-8")
    empty = root / "empty.txt"
    empty.write_text("", encoding="utf-8")
    return {"src": str(src), "ref": str(ref), "short": str(short), "empty": str(empty),
            "root": root, "n": len(pairs)}  # fmt: skip


def _json(capsys, argv):
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_attention_one_sentence_and_a_folder(toy_run, files, capsys):
    out = files["root"] / "one.png"
    assert main(["attention", str(toy_run), "9 April 1974", "--out", str(out), "--beam", "2"]) == 0
    with Image.open(out) as image:
        cols = int(image.text["atento:cols"])
    assert cols == len("9 April 1974") + 1  # characters + EOS
    folder = files["root"] / "maps"
    assert main(["attention", str(toy_run), "--src", files["src"], "--out", str(folder)]) == 0
    assert len(list(folder.glob("*.png"))) == files["n"]


def test_score_prints_one_log_prob_per_line(toy_run, files, capsys):
    capsys.readouterr()
    assert main(["score", str(toy_run), "--src", files["src"], "--ref", files["ref"]]) == 0
    raw = [float(x) for x in capsys.readouterr().out.split()]
    assert len(raw) == files["n"] and all(x <= 0 for x in raw)
    argv = ["score", str(toy_run), "--src", files["src"], "--ref", files["ref"], "--normalised",
            "--alpha", "1", "--per-token"]  # fmt: skip
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    for line, total in zip(lines, raw, strict=True):
        normalised, tokens = line.split("\t")
        n = len(tokens.split())
        assert float(normalised) == pytest.approx(total / n, abs=1e-4)
        assert math.fsum(float(x) for x in tokens.split()) == pytest.approx(total, abs=1e-3)


def test_evaluate_by_length(toy_run, files, capsys):
    plot = files["root"] / "len.png"
    argv = ["evaluate", str(toy_run), "--src", files["src"], "--ref", files["ref"], "--json"]
    report = _json(capsys, [*argv, "--by-length", str(plot), "--buckets", "2,3"])
    assert plot.is_file()
    assert sum(b["sentences"] for b in report["by_length"]) == files["n"]
    assert all(set(b) == {"bounds", "sentences", "bleu"} for b in report["by_length"])
    assert "bleu" in report and "sentences_per_second" in report


def test_compare_length_two_runs_one_plot(toy_run, files, capsys):
    plot = files["root"] / "compare.png"
    report = _json(capsys, ["compare-length", str(toy_run), str(toy_run), "--labels", "a,b",
                            "--src", files["src"], "--ref", files["ref"], "--out", str(plot),
                            "--json", "--beam", "1"])  # fmt: skip
    assert plot.is_file()
    assert [s["name"] for s in report["systems"]] == ["a", "b"]
    assert report["systems"][0]["by_length"] == report["systems"][1]["by_length"]


def test_beam_sweep(toy_run, files, capsys):
    plot = files["root"] / "sweep.png"
    report = _json(capsys, ["beam-sweep", str(toy_run), "--src", files["src"], "--ref",
                            files["ref"], "--beams", "1,3", "--alphas", "0,1", "--plot",
                            str(plot), "--json"])  # fmt: skip
    assert plot.is_file()
    got = [(r["beam"], r["alpha"]) for r in report["results"]]
    assert got == [(1, 0.0), (3, 0.0), (1, 1.0), (3, 1.0)]
    for r in report["results"]:
        assert {"bleu", "mean_score", "sentences_per_second"} <= set(r)
    assert main(["beam-sweep", str(toy_run), "--src", files["src"], "--ref", files["ref"],
                 "--beams", "1,2"]) == 0  # fmt: skip


def test_search_errors_json_report_sweep_and_exact(toy_run, files, capsys):
    md = files["root"] / "errors.md"
    argv = ["search-errors", str(toy_run), "--src", files["src"], "--ref", files["ref"]]
    options = ["--beam", "2", "--alpha", "0.6", "--json", "--report", str(md), "--beams", "1,5"]
    exact = ["--exact", "--exact-seconds", "0.5", "--exact-max-len", "10"]
    report = _json(capsys, [*argv, *options, *exact])
    for key in ("sentences", "errors", "search_errors", "model_errors", "search_error_fraction",
                "beam", "alpha"):  # fmt: skip
        assert key in report
    assert (report["sentences"], report["beam"], report["alpha"]) == (files["n"], 2, 0.6)
    assert report["errors"] == report["search_errors"] + report["model_errors"]
    assert [r["beam"] for r in report["by_beam"]] == [1, 2, 5]
    sources = Path(files["src"]).read_text(encoding="utf-8").splitlines()
    assert report["exact"]["checked"] == sum(len(s) <= 10 for s in sources)  # chars <= 10
    assert 0 <= report["exact"]["search_errors"] <= report["exact"]["checked"]
    table = md.read_text(encoding="utf-8")
    assert table.count("\n| ") == files["n"] + 1  # header + one row per sentence
    capsys.readouterr()
    assert main(["search-errors", str(toy_run), "--src", files["src"], "--ref", files["ref"]]) == 0
    assert "errors" in capsys.readouterr().out


def test_search_errors_advice_follows_exact_search(toy_run, files, capsys, monkeypatch):
    import atento.analysis.search_errors as search_errors

    found = {"checked": 4, "max_source_len": 10, "seconds_per_sentence": 0.5,
             "search_errors": 2, "search_error_fraction": 0.5, "timeouts": 0}  # fmt: skip
    monkeypatch.setattr(search_errors, "check_exact", lambda *a, **k: dict(found))
    argv = ["search-errors", str(toy_run), "--src", files["src"], "--ref", files["ref"]]
    report = _json(capsys, [*argv, "--beam", "2", "--json", "--exact"])
    assert report["exact"]["search_errors"] == 2
    assert "in 2 of 4 short sentences (50%)" in report["advice"]
    assert "will not help" not in report["advice"]


def test_empty_lines_are_reported_in_the_file_that_has_them(toy_run, files, capsys):
    root = files["root"]
    src, ref = root / "e.fr", root / "e.en"
    src.write_text("9 April 1974\n1. Dez. 1960\n3 march 2015\n\n", encoding="utf-8")
    ref.write_text("1974-04-09\n\n\n2000-01-01\n", encoding="utf-8")
    capsys.readouterr()
    argv = ["search-errors", str(toy_run), "--src", str(src), "--ref", str(ref), "--beam", "1"]
    assert main(argv) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "left out" in line]
    assert notes == [
        f"atento: {src} has 1 empty line(s) (line 4); {ref} has 2 empty line(s) (line 2, 3): "
        "3 pair(s) left out"
    ]
    ref.write_text("1974-04-09\n\n2015-03-03\n2000-01-01\n", encoding="utf-8")
    src.write_text("9 April 1974\n1. Dez. 1960\n3 march 2015\n1 Jan 2000\n", encoding="utf-8")
    assert main(["compare-length", str(toy_run), "--src", str(src), "--ref", str(ref),
                 "--out", str(root / "c.png"), "--beam", "1"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert f"{ref} has 1 empty line(s) (line 2): 1 pair(s) left out" in err and f"{src} " not in err


BAD = [
    ["score", "{run}", "--src", "{missing}", "--ref", "{ref}"],
    ["score", "{run}", "--src", "{src}", "--ref", "{short}"],
    ["score", "{not_run}", "--src", "{src}", "--ref", "{ref}"],
    ["score", "{run}", "--src", "{empty}", "--ref", "{empty}"],
    ["attention", "{run}", "--out", "{root}/x.png"],
    ["attention", "{run}", "--src", "{empty}", "--out", "{root}/xs"],
    ["attention", "{not_run}", "9 April", "--out", "{root}/x.png"],
    [
        "evaluate",
        "{run}",
        "--src",
        "{src}",
        "--ref",
        "{ref}",
        "--by-length",
        "x.png",
        "--buckets",
        "5,2",
    ],  # fmt: skip
    ["compare-length", "{run}", "{not_run}", "--src", "{src}", "--ref", "{ref}", "--out", "x.png"],
    [
        "compare-length",
        "{run}",
        "--labels",
        "a,b",
        "--src",
        "{src}",
        "--ref",
        "{ref}",
        "--out",
        "x.png",
    ],  # fmt: skip
    ["beam-sweep", "{run}", "--src", "{src}", "--ref", "{ref}", "--beams", "1,x"],
    ["beam-sweep", "{run}", "--src", "{src}", "--ref", "{ref}", "--beams", "0,2"],
    ["beam-sweep", "{run}", "--src", "{src}", "--ref", "{short}"],
    ["search-errors", "{run}", "--src", "{src}", "--ref", "{short}"],
    ["search-errors", "{run}", "--src", "{src}", "--ref", "{ref}", "--beams", ""],
    ["search-errors", "{run}", "--src", "{empty}", "--ref", "{empty}"],
    ["search-errors", "{not_run}", "--src", "{src}", "--ref", "{ref}"],
    ["search-errors", "{run}", "--src", "{src}", "--ref", "{ref}", "--beam", "0"],
]


@pytest.mark.parametrize("argv", BAD, ids=[" ".join(a[:1] + a[-2:]) for a in BAD])
def test_bad_input_exits_2_with_one_line(toy_run, files, capsys, argv):
    values = {**files, "run": str(toy_run), "not_run": str(files["root"]),
              "missing": str(files["root"] / "nope.txt")}  # fmt: skip
    capsys.readouterr()
    assert main([a.format(**values) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("atento ") and len(err.splitlines()) == 1
