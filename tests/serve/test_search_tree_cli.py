"""`atento search-tree RUN "sentence" --out tree.png`: the drawn tree is the search's trace."""

from PIL import Image

import atento
from atento.cli.main import main

from .conftest import DATES


def test_search_tree_draws_the_trace(tf_run, tmp_path, capsys):
    out = tmp_path / "tree.png"
    assert main(["search-tree", str(tf_run), DATES[2], "--out", str(out), "--beam", "3"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == str(out)
    trace = atento.load(tf_run).search_trace(DATES[2], beam=3)
    assert [line.split("\t")[1] for line in printed[1:]] == [n["text"] for n in trace["nbest"]]
    meta = Image.open(out).text
    assert int(meta["atento:steps"]) == len(trace["steps"])
    for status in ("kept", "finished", "pruned"):
        expected = sum(c["status"] == status for s in trace["steps"] for c in s["candidates"])
        assert int(meta[f"atento:{status}"]) == expected
    assert int(meta["atento:kept"]) >= 3  # the toy model may never finish: max length


def test_search_tree_svg_and_errors(tf_run, tmp_path, capsys):
    svg = tmp_path / "tree.svg"
    assert main(["search-tree", str(tf_run), DATES[0], "--out", str(svg), "--beam", "2"]) == 0
    assert svg.read_text().lstrip().startswith("<?xml")
    assert main(["search-tree", str(tf_run), DATES[0], "--out", str(tmp_path / "t.jpg")]) == 2
    assert "--out must end in .png or .svg" in capsys.readouterr().err
    assert main(["search-tree", str(tf_run), "  ", "--out", str(svg)]) == 2
    assert "sentence 0 is empty" in capsys.readouterr().err
    assert main(["search-tree", str(tmp_path / "nope"), DATES[0], "--out", str(svg)]) == 2
