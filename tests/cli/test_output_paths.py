"""Every command that writes opens its output path the same way (`atento.outputs`): missing
folders are created; a folder where a file is needed, a file where a folder is needed and a
location that cannot be written are one-line errors (exit 2), found before the work is done."""

import os

import pytest

from atento.cli.main import main
from atento.errors import AtentoError
from atento.outputs import output_path, write_text
from conftest import CONFIGS

DATES = ["9 April 1974", "1. Dez. 1960"]
REFS = ["1974-04-09", "1960-12-01"]


@pytest.fixture
def paths(tmp_path):
    src, ref = tmp_path / "src.txt", tmp_path / "ref.txt"
    src.write_text("\n".join(DATES) + "\n")
    ref.write_text("\n".join(REFS) + "\n")
    folder, file = tmp_path / "folder", tmp_path / "file.txt"
    folder.mkdir()
    file.write_text("x\n")
    return {"src": src, "ref": ref, "folder": folder, "file": file, "tmp": tmp_path}


def _fails(argv, capsys) -> str:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


# ---------------------------------------------------------------- output_path itself
def test_missing_folders_are_created(tmp_path) -> None:
    assert output_path(tmp_path / "a" / "b" / "out.txt") == tmp_path / "a" / "b" / "out.txt"
    assert (tmp_path / "a" / "b").is_dir() and not (tmp_path / "a" / "b" / "out.txt").exists()
    assert output_path(tmp_path / "c" / "d", kind="dir").is_dir()
    assert write_text(tmp_path / "e" / "f.txt", "hi\n").read_text() == "hi\n"


def test_wrong_kinds_and_files_on_the_way_are_refused(paths) -> None:
    folder, file = paths["folder"], paths["file"]
    with pytest.raises(AtentoError, match=r"^--out .*folder: is a folder; a file name is needed"):
        output_path(folder, option="--out")
    with pytest.raises(AtentoError, match=r"file\.txt: is a file; a folder is needed here$"):
        output_path(file, kind="dir")
    for kind in ("file", "dir"):
        with pytest.raises(AtentoError, match=r"file\.txt is a file, not a folder$"):
            output_path(file / "sub" / "out.png", kind=kind)


def test_a_location_that_cannot_be_written_is_refused(paths, monkeypatch) -> None:
    folder = paths["folder"]
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if p == folder else real(p, mode))
    with pytest.raises(AtentoError, match=r"cannot write in .*folder \(permission denied\)$"):
        output_path(folder / "out.txt", option="-o")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused(paths, capsys) -> None:
    folder = paths["folder"]
    folder.chmod(0o500)
    try:
        with pytest.raises(AtentoError, match="permission denied"):
            output_path(folder / "out.txt")
        with pytest.raises(AtentoError, match="cannot create"):
            output_path(folder / "sub" / "out.txt")
    finally:
        folder.chmod(0o700)


# ---------------------------------------------------------------- the commands
def test_translate_creates_the_folder_and_checks_before_decoding(toy_run, paths, capsys,
                                                                  monkeypatch) -> None:  # fmt: skip
    out = paths["tmp"] / "new" / "deeper" / "out.txt"
    assert main(["translate", str(toy_run), "-i", str(paths["src"]), "-o", str(out),
                 "--beam", "1"]) == 0  # fmt: skip
    assert len(out.read_text().splitlines()) == 2

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded before the output path was checked")

    monkeypatch.setattr("atento.predictors.decoding.DecoderPredictor.translate", no_decoding)
    for bad, message in ((paths["folder"], "is a folder"), (paths["file"] / "o.txt", "a file")):
        code = main(["translate", str(toy_run), "-i", str(paths["src"]), "-o", str(bad)],
                    guard=False)  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1


OUTPUTS = [
    (["attention", "{run}", "--src", "{src}", "--out", "{file}"], "is a file; a folder is needed"),
    (["attention", "{run}", DATES[0], "--out", "{folder}"], "is a folder; a file name is needed"),
    (["attention", "{run}", DATES[0], "--out", "{file}/x.png"], "is a file, not a folder"),
    (["attention", "{run}", DATES[0], "--out", "{tmp}/a.nope"], "Format 'nope' is not supported"),
    (["evaluate", "{run}", "--src", "{src}", "--ref", "{ref}", "--hyp-out", "{folder}"],
     "--hyp-out"),
    (["evaluate", "{run}", "--src", "{src}", "--ref", "{ref}", "--by-length", "{file}/l.png"],
     "--by-length"),
    (["search-tree", "{run}", DATES[0], "--out", "{file}/t.png"], "is a file, not a folder"),
    (["search-errors", "{run}", "--src", "{src}", "--ref", "{ref}", "--report", "{folder}"],
     "--report"),
    (["beam-sweep", "{run}", "--src", "{src}", "--ref", "{ref}", "--plot", "{folder}"], "--plot"),
    (["compare-length", "{run}", "--src", "{src}", "--ref", "{ref}", "--out", "{file}/c.png"],
     "is a file, not a folder"),
    (["train", str(CONFIGS / "toy_dates.yaml"), "--out", "{file}"], "a folder is needed"),
    (["demo", "--out", "{file}"], "a folder is needed"),
]  # fmt: skip


@pytest.mark.parametrize("argv,message", OUTPUTS, ids=[" ".join(a[:1]) + " " + a[-1] + " " + m
                                                       for a, m in OUTPUTS])  # fmt: skip
def test_bad_output_paths_are_one_line_errors(argv, message, toy_run, paths, capsys) -> None:
    err = _fails([a.format(run=toy_run, **paths) for a in argv], capsys)
    assert message in err


def test_figures_and_reports_go_into_new_folders(toy_run, paths, capsys) -> None:
    tmp = paths["tmp"]
    common = ["--src", str(paths["src"]), "--ref", str(paths["ref"]), "--beam", "1"]
    assert main(["search-errors", str(toy_run), *common, "--report", str(tmp / "r" / "e.md")]) == 0
    assert (tmp / "r" / "e.md").read_text().startswith("# Beam-search error analysis")
    assert main(["attention", str(toy_run), "--src", str(paths["src"]),
                 "--out", str(tmp / "maps" / "deep")]) == 0  # fmt: skip
    assert len(list((tmp / "maps" / "deep").glob("*.png"))) == 2
