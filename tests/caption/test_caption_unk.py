"""Word-level captions never contain the unknown-word token (`search.ban_unk`, on by default
for captioning runs with word tokens), and `evaluate` says how often the ban changed a word."""

import json
import shutil

import pytest

from atento.checkpoints import load_checkpoint, save_checkpoint
from atento.cli.main import main
from atento.data.tokenizers import UNK_SURFACE
from atento.data.vocab import UNK_ID


def _unk_loving_copy(caption_run, tmp_path, ban_unk):
    """The tiny captioning run with UNK made the model's favourite word at every step."""
    run = tmp_path / "run"
    shutil.copytree(caption_run, run)
    ckpt = load_checkpoint(run / "checkpoint_best")
    ckpt.model["output.bias"] = ckpt.model["output.bias"].clone()
    ckpt.model["output.bias"][UNK_ID] += 100.0
    if ban_unk is not None:
        ckpt.config["search"]["ban_unk"] = ban_unk
    save_checkpoint(ckpt, run / "checkpoint_best")
    return run


@pytest.mark.parametrize("ban_unk", [None, False])
def test_evaluate_bans_unk_by_default_and_counts_it(caption_run, tmp_path, capsys, ban_unk):
    run = _unk_loving_copy(caption_run, tmp_path, ban_unk)
    hyp = tmp_path / "hyp.tsv"
    argv = ["evaluate", str(run), "--split", "dev", "--beam", "2", "--no-meteor"]
    capsys.readouterr()
    assert main([*argv, "--json", "--hyp-out", str(hyp)]) == 0
    report = json.loads(capsys.readouterr().out)
    captions = [line.split("\t")[1] for line in hyp.read_text(encoding="utf-8").splitlines()]
    assert len(captions) == report["images"] == 2
    if ban_unk is None:  # the default of a word-level captioning run
        assert report["ban_unk"] is True and report["unk_banned_steps"] >= 2
        assert all(c and UNK_SURFACE not in c for c in captions)
        assert main(argv) == 0
        assert "UNK banned, the best word at " in capsys.readouterr().out
    else:
        assert report["ban_unk"] is False and report["unk_banned_steps"] == 0
        assert all(UNK_SURFACE in c for c in captions)
