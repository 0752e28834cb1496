"""Run directories written by the previous release (pickled `checkpoint_best.pt`, flat model
sections, `train.bf16`) still translate, to the same n-best lists, without running pickle code."""

import shutil

import pytest

from atento.cli.main import main
from conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures"


def _nbest(text: str) -> dict[int, list[tuple[str, float]]]:
    out: dict[int, list[tuple[str, float]]] = {}
    for line in text.strip().splitlines():
        index, hyp, score = line.split(" ||| ")
        out.setdefault(int(index), []).append((hyp, float(score)))
    return out


@pytest.mark.parametrize("name", ["legacy_v1_toy_dates", "legacy_v1_toy_transformer"])
def test_old_run_directories_translate_as_before(name, tmp_path, capsys):
    run = tmp_path / name
    shutil.copytree(FIXTURES / name, run)  # loading must not write into the run directory
    args = ["translate", str(run), "--beam", "3", "--nbest", "2", "--precision", "fp32",
            "-i", str(FIXTURES / "legacy_v1_inputs.txt")]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr()
    got, expected = _nbest(out.out), _nbest((run / "expected_nbest.txt").read_text())
    assert got.keys() == expected.keys()
    for i in expected:  # hypotheses that tie may swap places: compare as score-sorted sets
        assert sorted(h for h, _ in got[i]) == sorted(h for h, _ in expected[i])
        for (_, a), (_, b) in zip(sorted(got[i]), sorted(expected[i]), strict=True):
            assert a == pytest.approx(b, abs=1e-4)
    assert "config of an older release migrated" in out.err
    assert sorted(p.name for p in run.iterdir()) == sorted(
        p.name for p in (FIXTURES / name).iterdir()
    )


def test_an_old_run_resumes_training(tmp_path, capsys):
    run = tmp_path / "old"
    shutil.copytree(FIXTURES / "legacy_v1_toy_dates", run)
    args = ["train", str(ROOT / "configs" / "toy_dates.yaml"), "train.max_steps=14",
            "--out", str(run), "--resume"]  # fmt: skip
    assert main(args) == 0
    from atento.checkpoints import LAST, load_checkpoint

    last = load_checkpoint(run / LAST, training=True)  # now in the new format
    assert last.format == 2 and last.step == 14 and last.train_model is not None
    assert last.progress["best_score"] is not None
