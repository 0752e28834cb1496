"""No traceback anywhere: every command of `atento --help` against a tiny run of every task
(RNN and Transformer translation, a language model, a captioner, a masked LM, a classifier)
and against a folder that is not a run, with the inputs each command takes.

Each pair either succeeds (exit 0) or fails with exit status 2 and one line on stderr; which
of the two is pinned per pair (`SUCCEEDS`), so that a command that stops working on a kind of
run it serves fails here too. The commands run without the top-level guard (`guard=False`),
so an unexpected exception surfaces as itself instead of as the guard's one line.
"""

from __future__ import annotations

import io

import pytest

from atento.cli.main import build_parser, main

KINDS = ("rnn", "transformer", "lm", "caption", "mlm", "classify", "not_a_run")
TRANSLATES = {"rnn", "transformer", "lm"}  # the language model continues each line
SUCCEEDS = {
    "translate": TRANSLATES,
    "evaluate": {"rnn", "transformer"},  # with --src/--ref: another task's options -> exit 2
    "attention": {"rnn", "transformer", "lm", "mlm", "classify"},  # caption: not an image
    "score": {"rnn", "transformer"},
    "compare-length": TRANSLATES,
    "beam-sweep": {"rnn", "transformer"},
    "search-errors": {"rnn", "transformer"},
    "search-tree": {"rnn", "transformer"},
    "sample": TRANSLATES,
    "caption": {"caption"},
    "classify": {"classify"},
    "train": set(),  # a run directory is not a config file
}
NOT_IN_MATRIX = {
    "demo": "takes no run",
    "serve": "tested below without a blocking server",
    "import": "reads a Hugging Face model directory, not a run (tests/hf)",
    "prepare": "takes a config, not a run (tests/cli/test_prepare.py)",
}


@pytest.fixture(scope="module")
def runs(request, toy_run, tf_run, lm_run, mlm_run, bert_run, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("not_a_run")
    (folder / "notes.txt").write_text("hello\n")
    try:
        caption = request.getfixturevalue("caption_run")
    except pytest.skip.Exception:
        caption = None
    return {"rnn": toy_run, "transformer": tf_run, "lm": lm_run, "caption": caption,
            "mlm": mlm_run, "classify": bert_run, "not_a_run": folder}  # fmt: skip


def _argv(command: str, run, tmp, inputs: dict) -> list[str]:
    src, ref, image = str(inputs["src"]), str(inputs["ref"]), str(inputs["image"])
    return {
        "translate": ["translate", run, "-i", src, "--beam", "2"],
        "evaluate": ["evaluate", run, "--src", src, "--ref", ref, "--json"],
        "attention": ["attention", run, "9 april 1974", "--out", str(tmp / "att.png")],
        "score": ["score", run, "--src", src, "--ref", ref],
        "compare-length": [
            "compare-length",
            run,
            "--src",
            src,
            "--ref",
            ref,
            "--out",
            str(tmp / "cmp.png"),
        ],  # fmt: skip
        "beam-sweep": ["beam-sweep", run, "--src", src, "--ref", ref, "--beams", "1,2"],
        "search-errors": ["search-errors", run, "--src", src, "--ref", ref, "--beam", "2"],
        "search-tree": ["search-tree", run, "9 april 1974", "--out", str(tmp / "tree.png")],
        "sample": ["sample", run, "--prompt", "9 april", "--max-new", "5"],
        "caption": ["caption", run, image],
        "classify": ["classify", run, "-i", src],
        "train": ["train", run],
    }[command]


def test_the_matrix_covers_every_command():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == set(SUCCEEDS) | set(NOT_IN_MATRIX)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", sorted(SUCCEEDS))
def test_every_command_on_every_kind_of_run(command, kind, runs, tmp_path, capsys, monkeypatch,
                                            flickr_image):  # fmt: skip
    if runs[kind] is None:
        pytest.skip("no Flickr8k copy for the captioning run")
    src, ref = tmp_path / "src.txt", tmp_path / "ref.txt"
    src.write_text("9 april 1974\n12 may 2001\n", encoding="utf-8")
    ref.write_text("1974-04-09\n2001-05-12\n", encoding="utf-8")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    argv = _argv(command, str(runs[kind]), tmp_path, {"src": src, "ref": ref,
                                                      "image": flickr_image})  # fmt: skip
    code = main(argv, guard=False)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if kind in SUCCEEDS[command]:
        assert code == 0, err
    else:
        errors = [line for line in err.splitlines() if "error:" in line]
        assert code == 2 and len(errors) == 1, err
        assert errors[0].startswith(f"atento {command}: error: ")


@pytest.fixture(scope="module")
def flickr_image(tmp_path_factory):
    from conftest import FLICKR8K

    images = sorted((FLICKR8K / "images").glob("*.jpg"))[:1] if FLICKR8K.is_dir() else []
    if images:
        return images[0]
    fake = tmp_path_factory.mktemp("img") / "x.jpg"
    fake.write_bytes(b"not an image")
    return fake


@pytest.mark.parametrize("kind", KINDS)
def test_serve_takes_the_runs_a_route_serves_and_refuses_the_others(kind, runs, capsys):
    from atento.cli.serve import build

    if runs[kind] is None:
        pytest.skip("no Flickr8k copy for the captioning run")
    args = build_parser().parse_args(["serve", str(runs[kind])])
    if kind in ("caption", "not_a_run"):  # no route serves a captioner (images)
        from atento.errors import AtentoError

        with pytest.raises(AtentoError) as exc:
            build(args)
        assert "\n" not in str(exc.value)
    else:
        assert build(args) is not None
