"""Training loop pieces: loss, schedule, metrics, run-directory contents."""

import json
import math

import pytest
import torch

from atento.checkpoints import BEST, LAST, load_checkpoint
from atento.training.loss import sequence_loss
from atento.training.metrics import corpus_scores
from atento.training.schedule import warmup_inverse_sqrt


def test_sequence_loss_ignores_padding_and_matches_hand_value():
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]]]))
    tgt = torch.tensor([[1, 0]])  # second position is padding (masked)
    mask = torch.tensor([[True, False]])
    assert sequence_loss(logits, tgt, mask=mask).item() == pytest.approx(-math.log(0.25))


def test_label_smoothing_spreads_mass():
    logits = torch.log(torch.tensor([[[0.1, 0.6, 0.3]]]))
    tgt = torch.tensor([[1]])
    eps = 0.3
    expected = -(1 - eps) * math.log(0.6) - eps / 3 * sum(math.log(p) for p in (0.1, 0.6, 0.3))
    assert sequence_loss(logits, tgt, label_smoothing=eps).item() == pytest.approx(expected)


def test_warmup_then_inverse_sqrt():
    f = warmup_inverse_sqrt(100)
    assert f(50) == pytest.approx(0.5)
    assert f(100) == pytest.approx(1.0)
    assert f(400) == pytest.approx(0.5)


def test_corpus_scores_perfect_and_signature():
    s = corpus_scores(["a cat sat on the mat"], ["a cat sat on the mat"])
    assert s.bleu == pytest.approx(100.0) and s.chrf == pytest.approx(100.0)
    assert "nrefs:1" in s.bleu_signature


def test_run_directory_contents(toy_run):
    assert (toy_run / "config.yaml").is_file() and (toy_run / "joint.json").is_file()
    rows = [json.loads(line) for line in (toy_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [10, 20]
    assert {"step", "epoch", "loss", "ppl", "bleu", "seconds"} <= rows[0].keys()
    best = load_checkpoint(toy_run / BEST)
    assert best.config["model"]["attention"] == "additive"
    assert best.tokenizers["src"].kind == "char" and best.training is None
    assert best.step == 10  # validation BLEU is best at step 10 or 20
    last = load_checkpoint(toy_run / LAST, training=True)
    assert last.step == 20 and "optimizer" in last.training and "rng" in last.training


def test_training_lowers_validation_loss(toy_run):
    rows = [json.loads(line) for line in (toy_run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["loss"] < rows[0]["loss"]
    # 20 updates take the toy dates model from uniform over its 75 symbols (ln 75 = 4.32 nats)
    # to about the entropy of the ISO alphabet (2.49 measured): a broken loss stays far above
    assert rows[-1]["loss"] < 2.8


def test_bf16_autocast_step_close_to_fp32(tmp_path):
    from atento.config_io import load_config
    from atento.training.loop import Trainer
    from conftest import CONFIGS

    losses = {}
    for precision in ("fp32", "bf16"):
        over = ["data.n_train=64", "train.max_steps=1", f"runtime.precision={precision}"]
        trainer = Trainer(load_config(CONFIGS / "toy_dates.yaml", over), tmp_path / precision,
                          progress=False)  # fmt: skip
        assert trainer.placement.precision == precision
        batch = trainer.task.collate(list(range(16)))
        losses[precision], count = trainer.train_step(batch)
        assert count == batch.n_tgt_tokens
    assert math.isfinite(losses["bf16"])
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.02)


def test_validation_decodes_on_the_training_thread(tmp_path, monkeypatch):
    """`search.workers` is for decoding commands: a training process's validation decodes on
    its own thread, since decoding threads' malloc arenas and kernel caches stayed in the
    process (+160 MiB RSS at the Multi30k Transformer's first validation)."""
    import atento.inference
    from atento.config_io import load_config
    from atento.training.loop import Trainer
    from conftest import CONFIGS

    over = ["data.n_train=64", "search.workers=2", "runtime.precision=fp32"]
    cfg = load_config(CONFIGS / "toy_transformer.yaml", over)
    trainer = Trainer(cfg, tmp_path / "run", progress=False)

    def no_threads(*args, **kwargs):
        raise AssertionError("validation started decoding threads")

    monkeypatch.setattr(atento.inference, "ThreadPoolExecutor", no_threads)
    assert "bleu" in trainer.validate()
