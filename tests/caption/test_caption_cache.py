"""The feature cache: computed once, found again, recomputed when the image file or the
encoder changes; unreadable images are reported, not fatal."""

import os

import torch

from atento.captioning.cache import FeatureCache, feature_key


def fake_extractor(calls):
    def extract(images):  # (B, 3, 224, 224) -> (B, 49, 4): the mean colour per region
        calls.append(images.size(0))
        pooled = torch.nn.functional.avg_pool2d(images, 32)  # (B, 3, 7, 7)
        return torch.cat([pooled, pooled[:, :1]], 1).flatten(2).transpose(1, 2)

    return extract


def test_hit_miss_and_mtime_invalidation(tmp_path, flickr_mini):
    paths = sorted((flickr_mini / "images").iterdir())[:3]
    images = tmp_path / "images"
    images.mkdir()
    for p in paths:
        (images / p.name).write_bytes(p.read_bytes())
    paths = sorted(images.iterdir())
    calls = []
    cache = FeatureCache(tmp_path / "cache", encoder="fake", extract=fake_extractor(calls))
    first, errors = cache.features(paths)
    assert not errors and (cache.hits, cache.misses) == (0, 3) and calls == [3]
    assert first[0].dtype == torch.float16 and first[0].shape == (49, 4)

    again = FeatureCache(tmp_path / "cache", encoder="fake", extract=fake_extractor(calls))
    second, _ = again.features(paths)
    assert (again.hits, again.misses) == (3, 0) and calls == [3]  # nothing recomputed
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))

    st = paths[1].stat()
    os.utime(paths[1], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched: a new key
    third = FeatureCache(tmp_path / "cache", encoder="fake", extract=fake_extractor(calls))
    third.features(paths)
    assert (third.hits, third.misses) == (2, 1) and calls == [3, 1]

    other = FeatureCache(tmp_path / "cache", encoder="other", extract=fake_extractor(calls))
    other.features(paths[:1])
    assert other.misses == 1  # another encoder: its own features
    assert feature_key(paths[0], "fake") != feature_key(paths[0], "other")


def test_unreadable_images_are_reported_and_others_kept(tmp_path, flickr_mini):
    good = next((flickr_mini / "images").iterdir())
    bad = tmp_path / "bad.jpg"
    bad.write_text("text")
    cache = FeatureCache(tmp_path / "cache", encoder="fake", extract=fake_extractor([]))
    feats, errors = cache.features([bad, good, tmp_path / "missing.jpg"])
    assert feats[0] is None and feats[1] is not None and feats[2] is None
    assert set(errors) == {0, 2}
    assert "not an image" in errors[0] and "not found" in errors[2]


def test_real_encoder_features_are_cached(tmp_path, flickr_mini):
    path = next((flickr_mini / "images").iterdir())
    cache = FeatureCache(tmp_path / "cache")
    (feats,), _ = cache.features([path])
    assert feats.shape == (49, 1280) and cache.misses == 1
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 1
