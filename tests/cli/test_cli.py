"""Every command through the CLI on toy data; bad input exits 2 with a one-line message."""

import gzip
import json
import subprocess
import sys

import pytest

from atento.cli.main import main
from conftest import CONFIGS


def run_cli(args, capsys, stdin=None, monkeypatch=None):
    if stdin is not None:
        import io

        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_demo_writes_summary_and_heatmap(tmp_path, capsys):
    out_dir = tmp_path / "demo"
    # 400 small steps (~20 s on 2 cores): measured 0.75 exact match on these 100 dates, and
    # the demo's full 700 steps reach ~0.999; an untrained or broken model scores ~0
    overrides = ["data.n_train=6000", "data.n_valid=50", "data.n_test=100"]
    overrides += ["train.max_steps=400", "train.valid_every=400", "train.batch_tokens=1200"]
    overrides += ["train.max_minutes=0"]
    code, out, err = run_cli(["demo", "--out", out_dir, *overrides], capsys)
    assert code == 0
    assert (out + err).count("runtime:") == 1
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["test_sentences"] == 100
    assert summary["exact_match"] >= 0.4, summary
    assert summary["seconds"] > 0
    assert (out_dir / "attention.png").stat().st_size > 1000
    assert f"exact match on 100 held-out dates: {summary['exact_match']:.4f}" in out
    # running it again resumes the finished run instead of refusing the directory
    assert run_cli(["demo", "--out", out_dir, *overrides], capsys)[0] == 0


def test_train_translate_evaluate_on_files(tmp_path, toy_corpus, capsys, monkeypatch):
    (tr_src, tr_tgt), (va_src, va_tgt) = toy_corpus["train"], toy_corpus["valid"]
    # gzip accepted on input
    gz = tmp_path / "train.en.gz"
    gz.write_bytes(gzip.compress(tr_tgt.read_bytes()))
    run_dir = tmp_path / "run"
    code, out, _ = run_cli(
        ["train", CONFIGS / "toy_files.yaml", f"data.train.src={tr_src}", f"data.train.tgt={gz}",
         f"data.valid.src={va_src}", f"data.valid.tgt={va_tgt}", "--out", run_dir],
        capsys,
    )  # fmt: skip
    assert code == 0
    assert json.loads(out.strip().splitlines()[-1])["steps"] == 12

    sources = va_src.read_text().splitlines()
    code, out, _ = run_cli(["translate", run_dir], capsys, stdin="\n".join(sources[:5]) + "\n",
                           monkeypatch=monkeypatch)  # fmt: skip
    assert code == 0 and len(out.splitlines()) == 5

    hyp = tmp_path / "hyp.txt"
    code, _, _ = run_cli(["translate", run_dir, "-i", va_src, "-o", hyp, "--beam", "1"], capsys)
    assert code == 0 and len(hyp.read_text().splitlines()) == len(sources)

    code, out, _ = run_cli(
        ["translate", run_dir, "-i", va_src, "--beam", "2", "--nbest", "2"], capsys
    )
    assert code == 0 and len(out.splitlines()) == 2 * len(sources) and " ||| " in out

    code, out, _ = run_cli(
        ["evaluate", run_dir, "--src", va_src, "--ref", va_tgt, "--json"], capsys
    )
    assert code == 0
    report = json.loads(out)
    for key in ("bleu", "chrf", "sentences", "seconds", "sentences_per_second", "beam", "alpha"):
        assert key in report
    assert report["sentences"] == len(sources) and report["beam"] == 2


def test_evaluate_greedy_equals_beam_one_output(toy_run, tmp_path, capsys):
    src, ref = tmp_path / "s.txt", tmp_path / "r.txt"
    src.write_text("9 April 1974\n1. Dez. 1960\n")
    ref.write_text("1974-04-09\n1960-12-01\n")
    code, out, _ = run_cli(["evaluate", toy_run, "--src", src, "--ref", ref, "--beam", "1"], capsys)
    assert code == 0 and "BLEU" in out and "beam 1" in out
    # the outputs themselves: greedy search and a beam of one write the same hypotheses
    greedy, beam_one = tmp_path / "greedy.txt", tmp_path / "beam1.txt"
    for path, extra in ((greedy, []), (beam_one, ["--batch-size", "1"])):
        args = ["evaluate", toy_run, "--src", src, "--ref", ref, "--beam", "1", "--json",
                "--hyp-out", path, *extra]  # fmt: skip
        assert run_cli(args, capsys)[0] == 0
    from atento.rundir import load_run

    run = load_run(toy_run)
    hyps = run.translator().with_search(beam=1).translate(src.read_text().splitlines())
    lines = greedy.read_text().splitlines()
    assert lines == beam_one.read_text().splitlines() and len(lines) == 2
    assert lines == [run.tgt_tok.decode(h[0].tokens) for h in hyps]


BAD = [
    (["translate", "{missing}"], "run directory not found"),
    (["translate", "{notrun}"], "is not an atento run directory"),
    (["evaluate", "{run}", "--src", "{missing}", "--ref", "{ref}"], "file not found"),
    (["evaluate", "{run}", "--src", "{src}", "--ref", "{short}"], "line counts differ"),
    (["translate", "{run}", "-i", "{empty}"], "empty input"),
    (["translate", "{run}", "-i", "{src}", "--beam", "0"], "--beam must be at least 1"),
    (["translate", "{run}", "-i", "{src}", "--beam", "2", "--nbest", "3"], "--nbest"),
    (["train", "{cfg}", "train.max_stepz=3", "--out", "{out}"], "did you mean train.max_steps"),
    (["train", "{missing}"], "config file not found"),
    (["train", "{cfg}", "--out", "{notrun}", "--resume"], "cannot resume"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a[:1] + [m]) for a, m in BAD])
def test_bad_input_exits_2_with_one_line(args, message, toy_run, tmp_path, capsys):
    paths = {
        "missing": tmp_path / "nope.txt", "notrun": tmp_path, "run": toy_run,
        "src": tmp_path / "s.txt", "ref": tmp_path / "r.txt", "short": tmp_path / "short.txt",
        "empty": tmp_path / "empty.txt", "cfg": CONFIGS / "toy_dates.yaml", "out": tmp_path / "o",
    }  # fmt: skip
    paths["src"].write_text("a\nb\n")
    paths["ref"].write_text("x\ny\n")
    paths["short"].write_text("x\n")
    paths["empty"].write_text("")
    code, _, err = run_cli([a.format(**paths) for a in args], capsys)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_console_script_entry_point_runs():
    out = subprocess.run(
        [sys.executable, "-m", "atento.cli.main", "--version"], capture_output=True
    )
    assert out.returncode == 0 and b"atento" in out.stdout


@pytest.mark.parametrize(
    "override,message",
    [("runtime.device=tpu", "runtime.device='tpu' is not valid"),
     ("runtime.precision=fp16", "runtime.precision=fp16 needs a CUDA device"),
     ("model.d_model=64", "unknown key model.d_model for model.arch=rnn")],
)  # fmt: skip
def test_train_refuses_impossible_runtime_settings(tmp_path, capsys, override, message):
    args = ["train", CONFIGS / "toy_dates.yaml", "runtime.device=cpu", override, "--out", tmp_path]
    code, _, err = run_cli(args, capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_train_logs_the_runtime_it_chose(tmp_path, capsys):
    args = ["train", CONFIGS / "toy_dates.yaml", "train.max_steps=2", "train.valid_every=0",
            "runtime.threads=1", "--out", tmp_path / "r"]  # fmt: skip
    code, out, err = run_cli(args, capsys)
    assert code == 0
    assert "runtime: device cpu, precision fp32 (auto: ATENTO_NATIVE_BF16=0)" in err
    assert "torch threads: 1" in err
    assert (out + err).count("runtime:") == 1  # said once, with the settings applied
    result = json.loads(out.strip().splitlines()[-1])
    assert (result["device"], result["precision"], result["metric"]) == ("cpu", "fp32", "bleu")
    assert result["tokens_per_second"] > 0  # translation's unit: target tokens


def test_evaluate_says_what_a_translation_run_needs(toy_run, capsys):
    code, _, err = run_cli(["evaluate", toy_run, "--json"], capsys)
    assert code == 2 and "needs --src FILE and --ref FILE" in err


def test_python_dash_m_atento_is_the_command_line():
    out = subprocess.run([sys.executable, "-m", "atento", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "evaluate" in out.stdout


def test_a_run_without_best_checkpoint_says_it_uses_the_last(toy_run, tmp_path, capsys):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(toy_run, run_dir, ignore=shutil.ignore_patterns("checkpoint_best*"))
    assert (run_dir / "checkpoint_last").is_dir() and not (run_dir / "checkpoint_best").exists()
    src = tmp_path / "s.txt"
    src.write_text("9 April 1974\n")
    code, out, err = run_cli(["translate", run_dir, "-i", src, "--beam", "1"], capsys)
    assert code == 0 and len(out.splitlines()) == 1
    assert "has no checkpoint_best" in err and "using checkpoint_last" in err
    code, _, err = run_cli(["translate", toy_run, "-i", src, "--beam", "1"], capsys)
    assert code == 0 and "checkpoint_best" not in err


def _failing(monkeypatch):
    import atento.cli.translate

    def run(args):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(atento.cli.translate, "run", run)


def test_an_unexpected_error_is_one_line_with_where_to_report_it(monkeypatch, capsys):
    _failing(monkeypatch)
    monkeypatch.delenv("ATENTO_DEBUG", raising=False)
    code, out, err = run_cli(["translate", "some_run"], capsys)
    assert code == 70 and out == ""
    assert err.startswith("atento translate: internal error: RuntimeError: boom (a bug: report ")
    assert "with the command line at the atento issue tracker" in err and "--debug" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err and "second line" not in err


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback_of_an_unexpected_error(how, monkeypatch, capsys):
    _failing(monkeypatch)
    monkeypatch.delenv("ATENTO_DEBUG", raising=False)
    argv = ["--debug", "translate", "r"] if how == "flag" else ["translate", "r"]
    if how == "env":
        monkeypatch.setenv("ATENTO_DEBUG", "1")
    code, _, err = run_cli(argv, capsys)
    assert code == 70 and err.startswith("Traceback (most recent call last):")
    assert "RuntimeError: boom" in err and "in run" in err
    assert err.splitlines()[-1].startswith("atento translate: internal error: RuntimeError: boom")


def test_without_the_guard_the_exception_itself_comes_through(monkeypatch, capsys):
    _failing(monkeypatch)
    with pytest.raises(RuntimeError, match="boom"):
        main(["translate", "r"], guard=False)
    assert main(["evaluate", "nope"], guard=False) == 2  # bad input is still an exit status
    assert "run directory not found" in capsys.readouterr().err
