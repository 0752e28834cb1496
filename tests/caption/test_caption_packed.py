"""A split's features as one contiguous file (`FeatureCache.packed`): the same rows as the
per-image cache, built once, keyed so a stale file is never read, written atomically; and a
captioning run trained on it takes the same batches and losses as on features held in memory."""

import os

import pytest
import torch
from test_caption_cache import fake_extractor

from atento.captioning.cache import FeatureCache, PackedFeatures
from atento.config_io import load_config
from atento.errors import AtentoError
from atento.training.loop import Trainer
from conftest import CONFIGS, caption_overrides


def copy_images(flickr, directory):
    directory.mkdir()
    for p in sorted((flickr / "images").iterdir()):
        (directory / p.name).write_bytes(p.read_bytes())
    return sorted(directory.iterdir())


def packs(cache_dir):
    return sorted((cache_dir / "packs").iterdir())


def test_pack_rows_equal_the_per_image_features(tmp_path, flickr_mini):
    paths = copy_images(flickr_mini, tmp_path / "images")
    calls = []
    cache = FeatureCache(tmp_path / "cache", encoder="fake", extract=fake_extractor(calls))
    pack, kept, errors = cache.packed(paths, chunk=3)  # misses extracted chunk by chunk
    assert isinstance(pack, PackedFeatures) and not errors and kept == list(range(len(paths)))
    assert calls == [3, 3, 3, 1] and pack.shape == (len(paths), 49, 4)
    ref = torch.stack(cache.features(paths)[0])
    assert torch.equal(pack[list(range(len(paths)))], ref)
    rows = torch.tensor([3, 4, 5, 0, 0, 9, -1, 2])  # runs, repeats, a negative index
    assert pack[rows].dtype == torch.float16 and torch.equal(pack[rows], ref[rows])
    assert torch.equal(pack[2], ref[2]) and torch.equal(pack[1:8:3], ref[1:8:3])
    assert torch.equal(torch.stack(list(pack)), ref) and len(pack) == len(paths)
    with pytest.raises(IndexError):
        pack[[len(paths)]]

    # found again: same file, nothing read per image or extracted, no temporary files left
    again = FeatureCache(tmp_path / "cache", encoder="fake", extract=fake_extractor(calls))
    second, _, _ = again.packed(paths)
    assert second.file == pack.file and (again.hits, again.misses) == (0, 0)
    assert packs(tmp_path / "cache") == [pack.file]
    assert torch.equal(second[rows], ref[rows])

    # another list (order, subset), a touched image or another encoder: another file
    assert again.packed(paths[::-1])[0].file != pack.file
    assert again.packed(paths[:4])[0].file != pack.file
    st = paths[1].stat()
    os.utime(paths[1], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    touched = FeatureCache(tmp_path / "cache", encoder="fake", extract=fake_extractor(calls))
    third, _, _ = touched.packed(paths)
    assert third.file != pack.file and touched.misses == 1 and calls[-1] == 1
    other = FeatureCache(tmp_path / "cache", encoder="other", extract=fake_extractor(calls))
    assert other.packed(paths)[0].file not in {pack.file, third.file}


def test_damaged_pack_is_built_again(tmp_path, flickr_mini):
    paths = sorted((flickr_mini / "images").iterdir())[:4]
    cache = FeatureCache(tmp_path / "cache", encoder="fake", extract=fake_extractor([]))
    pack, _, _ = cache.packed(paths)
    ref = pack[[0, 1, 2, 3]]
    pack.close()
    data = pack.file.read_bytes()
    for damaged in (data[:-5], data[100:], b""):  # cut short, trailer off, empty
        pack.file.write_bytes(damaged)
        with pytest.raises(ValueError):
            PackedFeatures.open(pack.file)
        again, kept, _ = cache.packed(paths)
        assert again.file == pack.file and kept == [0, 1, 2, 3]
        assert torch.equal(again[[0, 1, 2, 3]], ref)
        again.close()


def test_unreadable_images_are_skipped_and_not_kept_on_disk(tmp_path, flickr_mini):
    good = sorted((flickr_mini / "images").iterdir())[:2]
    bad = tmp_path / "bad.jpg"
    bad.write_text("text")
    paths = [good[0], bad, tmp_path / "missing.jpg", good[1]]
    cache = FeatureCache(tmp_path / "cache", encoder="fake", extract=fake_extractor([]))
    pack, kept, errors = cache.packed(paths)
    assert kept == [0, 3] and set(errors) == {1, 2} and "not an image" in errors[1]
    assert torch.equal(pack[[0, 1]], torch.stack(cache.features([good[0], good[1]])[0]))
    assert not packs(tmp_path / "cache")  # this process's own copy, already unlinked
    pack.close()
    with pytest.raises(AtentoError, match="image not found"):  # the first, as `features`
        cache.packed(paths, strict=True)
    assert not packs(tmp_path / "cache")
    assert cache.packed([bad]) == (None, [], {0: errors[1]})


def test_training_on_the_pack_equals_features_in_memory(tmp_path, flickr_mini):
    """Same batches, same per-step losses, same validation metrics and weights as the former
    representation (each split's features stacked into one fp16 tensor in memory)."""
    overrides = caption_overrides(flickr_mini, tmp_path / "cache")
    cfg = load_config(CONFIGS / "flickr8k_caption.yaml",
                      [*overrides, "train.max_steps=6", "train.valid_every=3"])  # fmt: skip

    def fit(name, in_memory):
        trainer = Trainer(cfg, tmp_path / name, progress=False)
        task = trainer.task
        assert isinstance(task.train_feats, PackedFeatures)
        if in_memory:
            cache = FeatureCache(tmp_path / "cache")
            for split, attr in (("train", "train_feats"), ("valid", "valid_feats")):
                feats, errors = cache.features(task.read_split(split).images)
                assert not errors
                setattr(task, attr, torch.stack(feats))
        batches = [task.collate(b) for b in task.batch_plan(0)]
        losses = []
        step = trainer.train_step
        trainer.train_step = lambda b: losses.append(step(b)) or losses[-1]
        trainer.fit()
        rows = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        return batches, losses, rows, trainer.model.state_dict()

    packed, memory = fit("packed", False), fit("memory", True)
    assert len(packed[0]) == len(memory[0]) > 1
    for a, b in zip(packed[0], memory[0], strict=True):
        assert a.features.dtype == torch.float32 and torch.equal(a.features, b.features)
        assert torch.equal(a.tgt_in, b.tgt_in) and torch.equal(a.tgt_out, b.tgt_out)
    assert len(packed[1]) == 6 and packed[1] == memory[1]
    strip = [r.split('"seconds"')[0] for r in packed[2]]  # the clock differs
    assert len(strip) == 2 and strip == [r.split('"seconds"')[0] for r in memory[2]]
    assert all(torch.equal(v, memory[3][k]) for k, v in packed[3].items())


def test_building_the_encoder_leaves_the_random_state_alone():
    """A run's initial weights must not depend on whether its features were cached."""
    from atento.captioning.encoder import ImageEncoder, _pretrained, pretrained_name

    _pretrained.cache_clear()
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    encoder = ImageEncoder.pretrained()
    assert torch.equal(torch.rand(3), expected)
    assert encoder.name == pretrained_name()  # the cache's key, computed without building it
