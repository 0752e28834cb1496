"""Fine-tuning the image encoder's last blocks (`model.finetune_blocks: N`): the frozen part's
output is cached at the cut, the tail (N blocks + head) is part of the captioning model; the
tail on a cached cut equals the whole frozen encoder, only the tail trains (BatchNorm
statistics kept), a fine-tuned run reloads and captions identically; bad N exits 2."""

import json

import pytest
import torch

from atento.captioning.cache import FeatureCache
from atento.captioning.encoder import (
    N_BLOCKS,
    EncoderTail,
    ImageEncoder,
    pretrained_name,
    to_regions,
)
from atento.captioning.images import load_image
from atento.checkpoints import find_checkpoint, load_checkpoint
from atento.cli.main import main
from atento.config_io import load_config
from atento.errors import AtentoError
from atento.training.loop import Trainer
from conftest import CONFIGS, caption_overrides


def finetune_config(flickr, cache, *extra):
    overrides = [*caption_overrides(flickr, cache), "model.finetune_blocks=1", *extra]
    return load_config(CONFIGS / "flickr8k_caption.yaml", overrides)


@pytest.fixture(scope="module")
def finetune_run(flickr_mini, tmp_path_factory):
    """A tiny run that fine-tuned the last block (4 steps), and the trainer that made it."""
    run_dir = tmp_path_factory.mktemp("runs") / "caption_ft1"
    cache = tmp_path_factory.mktemp("feature_cache_ft")
    cfg = finetune_config(flickr_mini, cache, "train.max_steps=4", "train.warmup_steps=1")
    trainer = Trainer(cfg, run_dir, progress=False)
    trainer.fit()
    return run_dir, trainer


def test_tail_on_the_cached_cut_equals_the_frozen_encoder(flickr_mini, tmp_path):
    paths = sorted((flickr_mini / "images").iterdir())[:2]
    cut_cache = FeatureCache(tmp_path / "cache", finetune_blocks=1)
    cut, errors = cut_cache.features(paths)
    assert not errors and cut[0].shape == (49, 192) and cut[0].dtype == torch.float16
    final, _ = FeatureCache(tmp_path / "cache").features(paths)
    assert final[0].shape == (49, 1280)
    # the cut is part of the key: one file per image and cut point
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 4
    assert pretrained_name(1) == pretrained_name() + ":input-of-block-15"

    full = to_regions(ImageEncoder.pretrained()(torch.stack([load_image(p) for p in paths])))
    tail = EncoderTail.pretrained(1)
    with torch.no_grad():
        out = tail(torch.stack(cut).float())
    assert out.shape == full.shape == (2, 49, 1280)
    torch.testing.assert_close(out, full, atol=2e-2, rtol=1e-2)  # fp16 cut, fp32 tail
    torch.testing.assert_close(out.half(), torch.stack(final), atol=2e-2, rtol=1e-2)
    # a cut inside stage 6 (14 x 14 regions) works the same way
    cut5, _ = FeatureCache(tmp_path / "cache", finetune_blocks=5).features(paths[:1])
    assert cut5[0].shape == (196, 112)
    with torch.no_grad():
        out5 = EncoderTail.pretrained(5)(cut5[0][None].float())
    torch.testing.assert_close(out5, full[:1], atol=2e-2, rtol=1e-2)


def test_one_block_trains_only_the_tail(flickr_mini, tmp_path):
    cfg = finetune_config(flickr_mini, tmp_path / "cache", "train.warmup_steps=1")
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    model, frozen = trainer.model, ImageEncoder.pretrained()
    tail = model.tail
    assert isinstance(tail, EncoderTail) and len(tail.blocks) == 1
    # the tail trains at train.lr * model.finetune_lr_scale, the decoder at train.lr
    tail_ids = {id(p) for p in tail.parameters()}
    (group,) = [g for g in trainer.optimizer.param_groups if id(g["params"][0]) in tail_ids]
    assert {id(p) for p in group["params"]} == tail_ids
    assert group["initial_lr"] == pytest.approx(cfg.train.lr * cfg.model.finetune_lr_scale)
    before = {k: v.clone() for k, v in tail.state_dict().items()}
    frozen_before = {k: v.clone() for k, v in frozen.state_dict().items()}
    batch = trainer.task.collate(trainer.task.batch_plan(0)[0])
    assert batch.features.shape[1:] == (49, 192)  # the cut, not the final map
    trainer.train_step(batch)

    assert not tail.training and all(not m.training for m in tail.modules())  # BN in eval
    assert model.project.training  # the decoder itself is in training mode
    grads = [p.grad for p in tail.parameters()]
    assert all(g is not None for g in grads) and any(float(g.abs().sum()) > 0 for g in grads)
    after = tail.state_dict()
    stats = [k for k in before if "running_" in k or "num_batches" in k]
    weights = [k for k in before if k not in stats]
    assert stats and all(torch.equal(before[k], after[k]) for k in stats)  # BN stats kept
    assert any(not torch.equal(before[k], after[k]) for k in weights)  # weights trained
    # the frozen encoder (which extracts the cut) is untouched and has no gradients
    assert all(torch.equal(frozen_before[k], v) for k, v in frozen.state_dict().items())
    assert all(p.grad is None and not p.requires_grad for p in frozen.parameters())
    assert not any(p is q for p in frozen.parameters() for q in model.parameters())


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_finetuned_run_reloads_and_captions_identically(finetune_run, flickr_mini, capsys):
    run_dir, trainer = finetune_run
    ckpt = load_checkpoint(find_checkpoint(run_dir, "best"))
    assert ckpt.config["model"]["finetune_blocks"] == 1
    tail_keys = [k for k in ckpt.model if k.startswith("tail.")]
    assert tail_keys
    pretrained = EncoderTail.pretrained(1).state_dict()
    assert any(not torch.equal(ckpt.model[k], pretrained[k.removeprefix("tail.")])
               for k in tail_keys)  # fmt: skip  # the checkpoint holds the fine-tuned tail

    images = [flickr_mini / "images" / n for n in (flickr_mini / "dev.txt").read_text().split()]
    trainer.model.eval()  # the trained model in memory (the best checkpoint is its last step)
    feats, _ = trainer.task.image_features(images)
    translator = trainer.task.translator(trainer.model, trainer.placement)
    translator = translator.with_search(beam=3, alpha=0.0, nbest=1)
    tok = trainer.task.tokenizers["tgt"]
    expected = [f"{p}\t{tok.decode(h[0].tokens)}"
                for p, h in zip(images, translator.translate_ids(feats), strict=True)]  # fmt: skip

    code, out, _ = run_cli(["caption", run_dir, *images, "--beam", "3", "--alpha", "0"], capsys)
    assert code == 0 and out.splitlines() == expected

    import atento

    got = atento.load(run_dir).caption(images, beam=3, alpha=0.0)
    assert [f"{c.image}\t{c.text}" for c in got] == expected

    png = run_dir.parent / "a.png"
    code, out, _ = run_cli(["attention", run_dir, images[0], "--out", png, "--beam", "3",
                            "--alpha", "0"], capsys)  # fmt: skip
    assert code == 0 and out.rstrip("\n").split("\t")[2] == expected[0].split("\t")[1]

    code, out, _ = run_cli(["evaluate", run_dir, "--split", "dev", "--beam", "3", "--json"],
                           capsys)  # fmt: skip
    assert code == 0 and json.loads(out)["images"] == 2


def test_finetuned_run_resumes(finetune_run, flickr_mini, tmp_path):
    run_dir, trainer = finetune_run
    cfg = finetune_config(flickr_mini, trainer.cfg.data.cache, "train.max_steps=6",
                          "train.warmup_steps=1")  # fmt: skip
    resumed = Trainer(cfg, run_dir, resume=True, progress=False)
    assert resumed.state.step == 4
    torch.testing.assert_close(resumed.model.tail.state_dict(), trainer.model.tail.state_dict())
    assert resumed.fit().steps == 6


@pytest.mark.parametrize("value", ["-1", str(N_BLOCKS + 1), "x"])
def test_bad_finetune_blocks_is_one_line_exit_2(flickr_mini, tmp_path, capsys, value):
    overrides = caption_overrides(flickr_mini, tmp_path / "cache")
    code, out, err = run_cli(["train", CONFIGS / "flickr8k_caption.yaml", *overrides,
                              f"model.finetune_blocks={value}", "--out", tmp_path / "r"],
                             capsys)  # fmt: skip
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "model.finetune_blocks" in err
    assert not (tmp_path / "r").exists()
    with pytest.raises(AtentoError, match="finetune_blocks"):
        FeatureCache(tmp_path / "cache", finetune_blocks=N_BLOCKS + 1)
