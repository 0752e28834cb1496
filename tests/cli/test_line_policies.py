"""One output line per input line, in order, under the shared line policies (`--on-empty`,
`--on-bad-utf8`, `--on-too-long`) of translate, score and evaluate; and the reader itself."""

import json
import os
import threading

import pytest

from atento.cli.main import main
from atento.data.lines import LinePolicy, decode_lines, fit_lengths, read_text_lines
from atento.errors import AtentoError
from conftest import CONFIGS

DATES = ["9 April 1974", "1. Dez. 1960", "tuesday, 3 march 2015", "3/4/1999"]
REFS = ["1974-04-09", "1960-12-01", "2015-03-03", "1999-04-03"]


# ---------------------------------------------------------------- the reader
def test_reader_splits_on_newline_only_and_strips_bom_cr_and_trailing_space() -> None:
    data = b"\xef\xbb\xbfa b \r\n\ncaf\xc3\xa9\xe2\x80\xa8x\r\n"
    assert decode_lines(data, "f") == ["a b", "", "caf\u00e9\u2028x"]
    assert decode_lines(b"", "f") == [] and decode_lines(b"x", "f") == ["x"]
    assert decode_lines(b"\n", "f") == [""]


def test_bad_utf8_names_file_line_and_byte_offset() -> None:
    data = b"\xef\xbb\xbfok\nfine\nbad \xff byte\n"
    with pytest.raises(AtentoError) as err:
        decode_lines(data, "in.txt")
    # BOM (3) + "ok\n" (3) + "fine\n" (5) + "bad " (4) = byte 15 of the file
    assert str(err.value).startswith("in.txt:3: invalid UTF-8 at byte offset 15")
    assert data[15] == 0xFF
    lines = decode_lines(data, "in.txt", LinePolicy(on_bad_utf8="replace"))
    assert lines == ["ok", "fine", "bad \ufffd byte"]


def test_empty_line_error_names_the_line() -> None:
    with pytest.raises(AtentoError, match=r"^f:2: empty line"):
        decode_lines(b"a\n  \nb\n", "f", LinePolicy(on_empty="error"))


def test_fit_lengths_error_or_truncate_with_original_line_numbers() -> None:
    ids = [[1] * 3, [2] * 6, [3] * 4]
    assert fit_lengths(ids, None, name="f") == ids
    with pytest.raises(AtentoError, match=r"^f:7: 6 pieces, longer than the model takes \(4"):
        fit_lengths(ids, 4, name="f", numbers=[1, 7, 9])
    cut = fit_lengths(ids, 4, LinePolicy(on_too_long="truncate"), name="f")
    assert cut == [[1] * 3, [2] * 4, [3] * 4]


def test_unknown_policy_value_is_refused() -> None:
    with pytest.raises(AtentoError, match="on-empty"):
        LinePolicy(on_empty="skip")


def _pipe(data: bytes) -> str:
    """What `<(printf ...)` gives a command: /dev/fd/N, the read end of a filled pipe."""
    read, write = os.pipe()
    os.write(write, data)
    os.close(write)
    return f"/dev/fd/{read}"


def _fifo(path, data: bytes):
    """A named pipe at `path` that a thread fills once a reader opens it."""
    os.mkfifo(path)

    def fill() -> None:
        with open(path, "wb") as f:
            f.write(data)

    threading.Thread(target=fill, daemon=True).start()
    return path


def test_reader_reads_pipes_and_names_missing_paths_and_folders(tmp_path) -> None:
    assert read_text_lines(_pipe(b"a\nb\n")) == ["a", "b"]
    assert read_text_lines(_fifo(tmp_path / "fifo", b"x\n")) == ["x"]
    with pytest.raises(AtentoError, match=r"^file not found: .*nope\.txt$"):
        read_text_lines(tmp_path / "nope.txt")
    with pytest.raises(AtentoError, match=r"is a folder, not a file$"):
        read_text_lines(tmp_path)


# ---------------------------------------------------------------- the commands
@pytest.fixture(scope="module")
def learned_run(tmp_path_factory):
    """A toy Transformer with learned positions (at most 23 pieces a side)."""
    run_dir = tmp_path_factory.mktemp("runs") / "learned"
    overrides = ["model.positions=learned", "model.max_positions=24", "train.max_steps=6",
                 "train.valid_every=6", "data.max_len=22"]  # fmt: skip
    assert main(["train", str(CONFIGS / "toy_transformer.yaml"), *overrides,
                 "--out", str(run_dir)]) == 0  # fmt: skip
    return run_dir


def _write(path, lines: list[bytes]):
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def _run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


LONG = ("12 march 2001, " * 4).strip()  # 59 characters: over the 23-piece limit


def test_translate_keeps_one_line_per_input_line(learned_run, tmp_path, capsys) -> None:
    mixed = [DATES[0].encode(), b"", DATES[1].encode(), b"bad \xff", DATES[2].encode()]
    src = _write(tmp_path / "src.txt", mixed)
    code, out, err = _run(["translate", learned_run, "-i", src], capsys)
    offset = src.read_bytes().index(b"\xff")
    assert code == 2 and out == [] and len(err.strip().splitlines()) == 1
    assert f"invalid UTF-8 at byte offset {offset} (--on-bad-utf8 replace" in err
    assert f"{src}:4:" in err
    code, out, _ = _run(["translate", learned_run, "-i", src, "--on-bad-utf8", "replace"], capsys)
    assert code == 0 and len(out) == len(mixed) and out[1] == ""
    alone = {}
    for i in (0, 2, 4):  # each line alone gives the same output as in the mixed file
        one = _write(tmp_path / f"one{i}.txt", [mixed[i]])
        alone[i] = _run(["translate", learned_run, "-i", one], capsys)[1]
        assert alone[i] == [out[i]]
    code, _, err = _run(["translate", learned_run, "-i", src, "--on-bad-utf8", "replace",
                         "--on-empty", "error"], capsys)  # fmt: skip
    assert code == 2 and f"{src}:2: empty line" in err


def test_nbest_gives_an_empty_entry_for_an_empty_line(learned_run, tmp_path, capsys) -> None:
    src = _write(tmp_path / "src.txt", [DATES[0].encode(), b"", DATES[1].encode()])
    code, out, _ = _run(["translate", learned_run, "-i", src, "--beam", "3", "--nbest", "2"],
                        capsys)  # fmt: skip
    assert code == 0
    assert [line.split(" ||| ")[0] for line in out] == ["0", "0", "1", "2", "2"]
    assert out[2] == "1 |||  ||| 0.0000"


def test_too_long_line_is_an_error_or_truncated(learned_run, tmp_path, capsys) -> None:
    src = _write(tmp_path / "src.txt", [DATES[0].encode(), LONG.encode(), DATES[1].encode()])
    code, out, err = _run(["translate", learned_run, "-i", src], capsys)
    assert code == 2 and out == []
    assert f"{src}:2: 59 pieces, longer than the model takes (23;" in err
    code, out, err = _run(["translate", learned_run, "-i", src, "--on-too-long", "truncate"],
                          capsys)  # fmt: skip
    assert code == 0 and len(out) == 3 and "1 line(s) cut" in err
    cut = _write(tmp_path / "cut.txt", [LONG[:23].encode()])
    assert _run(["translate", learned_run, "-i", cut], capsys)[1] == [out[1]]


def test_score_and_evaluate_keep_lines(learned_run, tmp_path, capsys) -> None:
    src = _write(tmp_path / "src.txt", [DATES[0].encode(), b"", DATES[3].encode()])
    ref = _write(tmp_path / "ref.txt", [REFS[0].encode(), REFS[1].encode(), b""])
    code, out, _ = _run(["score", learned_run, "--src", src, "--ref", ref], capsys)
    assert code == 0 and len(out) == 3 and out[1] == "" and out[2] == ""
    assert float(out[0]) < 0
    hyp = tmp_path / "hyp.txt"
    code, out, _ = _run(["evaluate", learned_run, "--src", src, "--ref", ref, "--json",
                         "--hyp-out", hyp], capsys)  # fmt: skip
    assert code == 0 and json.loads(out[0])["sentences"] == 3
    assert len(hyp.read_text().split("\n")) == 4 and hyp.read_text().split("\n")[1] == ""
    code, _, err = _run(["score", learned_run, "--src", src, "--ref", ref, "--on-empty", "error"],
                        capsys)  # fmt: skip
    assert code == 2 and f"{src}:2: empty line" in err


def test_decoding_never_runs_past_learned_positions(learned_run, tmp_path, capsys) -> None:
    """max_len_b larger than the model's positions: outputs are capped, never a crash."""
    src = _write(tmp_path / "src.txt", [d.encode() for d in DATES])
    code, out, _ = _run(["translate", learned_run, "-i", src], capsys)
    assert code == 0 and len(out) == len(DATES)


def test_translate_and_score_read_process_substitutions(learned_run, tmp_path, capsys) -> None:
    src = _write(tmp_path / "src.txt", [DATES[0].encode(), DATES[1].encode()])
    expected = _run(["translate", learned_run, "-i", src], capsys)[1]
    code, out, err = _run(["translate", learned_run, "-i", _pipe(src.read_bytes())], capsys)
    assert (code, out) == (0, expected), err
    ref = _fifo(tmp_path / "ref.fifo", (REFS[0] + "\n" + REFS[1] + "\n").encode())
    code, out, err = _run(["score", learned_run, "--src", _pipe(src.read_bytes()), "--ref", ref],
                          capsys)  # fmt: skip
    assert code == 0 and len(out) == 2 and all(float(x) < 0 for x in out), err
    code, _, err = _run(["translate", learned_run, "-i", tmp_path], capsys)
    assert (
        code == 2 and err.strip() == f"atento translate: error: {tmp_path} is a folder, not a file"
    )
