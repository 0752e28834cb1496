"""The CLI trains, translates, evaluates, scores and draws attention for a toy Transformer."""

import json

import pytest
import torch
from PIL import Image

from atento.cli.main import main
from conftest import CONFIGS

DATES = ["9 April 1974", "1. Dez. 1960", "tuesday, 3 march 2015"]


@pytest.fixture(scope="module")
def tf_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "toy_transformer"
    assert main(["train", str(CONFIGS / "toy_transformer.yaml"), "--out", str(run_dir)]) == 0
    return run_dir


@pytest.fixture
def files(tmp_path):
    src, ref = tmp_path / "src.txt", tmp_path / "ref.txt"
    src.write_text("\n".join(DATES) + "\n")
    ref.write_text("1974-04-09\n1960-12-01\n2015-03-03\n")
    return src, ref


def _png(path):
    with Image.open(path) as image:
        return dict(image.text)


def test_train_translate_evaluate(tf_run, files, capsys):
    capsys.readouterr()
    src, ref = files
    out = tf_run / "hyp.txt"
    assert main(["translate", str(tf_run), "-i", str(src), "-o", str(out), "--beam", "3"]) == 0
    assert len(out.read_text().splitlines()) == len(DATES)
    assert main(["evaluate", str(tf_run), "--src", str(src), "--ref", str(ref), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sentences"] == 3 and report["beam"] == 3 and "bleu" in report
    code = main(["search-errors", str(tf_run), "--src", str(src), "--ref", str(ref), "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["sentences"] == 3


def test_attention_default_layer_head_and_grid(tf_run, tmp_path, capsys):
    mean = tmp_path / "mean.png"
    assert main(["attention", str(tf_run), DATES[0], "--out", str(mean)]) == 0
    text = _png(mean)
    assert int(text["atento:cols"]) == len(DATES[0]) + 1  # characters + EOS
    one = tmp_path / "one.png"
    args = ["attention", str(tf_run), DATES[0], "--out", str(one), "--layer", "0", "--head", "1"]
    assert main(args) == 0
    assert _png(one)["atento:rows"] == text["atento:rows"]
    grid = tmp_path / "grid.png"
    assert main(["attention", str(tf_run), DATES[0], "--out", str(grid), "--grid"]) == 0
    assert _png(grid)["atento:heads"] == "4"


@pytest.mark.parametrize(
    "extra,message",
    [(["--layer", "2"], "layer 2 out of range: the decoder has 2 layers (-2..1)"),
     (["--head", "9"], "head 9 out of range: layers have 4 heads (0..3)"),
     (["--grid", "--head", "0"], "--grid draws every head")],
)  # fmt: skip
def test_attention_bad_view_is_a_one_line_error(tf_run, tmp_path, capsys, extra, message):
    code = main(["attention", str(tf_run), DATES[0], "--out", str(tmp_path / "x.png"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_layer_and_head_are_refused_for_rnn_runs(toy_run, tmp_path, capsys):
    code = main(["attention", str(toy_run), DATES[0], "--out", str(tmp_path / "x.png"),
                 "--layer", "0"])  # fmt: skip
    assert code == 2 and "Transformer runs" in capsys.readouterr().err


def test_attention_rows_are_kept_only_when_asked_for(tf_run):
    from atento.rundir import load_run

    translator = load_run(tf_run).translator().with_search(beam=3, nbest=3)
    plain = translator.translate(DATES)
    kept = translator.with_attention().translate(DATES)
    for a, b in zip(plain, kept, strict=True):
        assert [h.tokens for h in a] == [h.tokens for h in b]  # the same search either way
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-5)
        assert all(h.attention is None for h in a)
        assert all(h.attention.shape[0] == h.length for h in b)


def test_bf16_decoding_through_the_cli(tf_run, files, capsys):
    from atento.rundir import load_run

    src, ref = files
    args = ["evaluate", str(tf_run), "--src", str(src), "--ref", str(ref), "--json"]
    assert main([*args, "--precision", "bf16"]) == 0
    bf16 = json.loads(capsys.readouterr().out)
    assert main([*args, "--precision", "fp32"]) == 0
    fp32 = json.loads(capsys.readouterr().out)
    assert bf16["sentences"] == fp32["sentences"] == 3
    assert (bf16["precision"], fp32["precision"]) == ("bf16", "fp32")
    assert main([*args, "--bf16"]) == 0  # the deprecated spelling still works, with a warning
    out = capsys.readouterr()
    assert json.loads(out.out)["precision"] == "bf16" and "--bf16 is deprecated" in out.err
    # bf16 matrix products: scores near the fp32 ones (the search itself stays in fp32)
    translator = load_run(tf_run).translator().with_search(beam=3)
    a = translator.translate(DATES)
    b = translator.with_precision("bf16").translate(DATES)
    same = [(x[0], y[0]) for x, y in zip(a, b, strict=True) if x[0].tokens == y[0].tokens]
    assert len(same) >= 2
    for x, y in same:
        assert y.score == pytest.approx(x.score, abs=0.05 * x.length + 0.05)
    assert any(x.score != y.score for x, y in same)  # bf16 really ran


@pytest.mark.parametrize("bf16", [False, True])
def test_worker_threads_decode_exactly_as_one(tf_run, bf16):
    from atento.rundir import load_run

    sentences = DATES * 7  # 21 sentences: batches of 4 on 3 threads
    translator = load_run(tf_run).translator().with_search(beam=3, batch_size=4)
    translator = translator.with_precision("bf16" if bf16 else "fp32")
    one = translator.translate(sentences)
    threads = torch.get_num_threads()
    many = translator.with_search(workers=3).translate(sentences)
    assert torch.get_num_threads() == threads  # the calling thread's count is never changed
    for a, b in zip(one, many, strict=True):
        assert [h.tokens for h in a] == [h.tokens for h in b]
        assert [h.score for h in a] == [h.score for h in b]


def test_workers_through_the_cli(tf_run, files, capsys):
    src, ref = files
    args = ["evaluate", str(tf_run), "--src", str(src), "--ref", str(ref), "--json"]
    assert main([*args, "--workers", "2", "--batch-size", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["sentences"] == 3
    assert main([*args, "--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err
