"""Images -> (B, 3, 224, 224) -> EfficientNet-Lite0 (B, 1280, 7, 7) -> regions (B, 49, 1280)
-> the decoder's memory (B, 49, D) with an all-true mask; bad image files are one-line errors."""

import pytest
import torch
from PIL import Image

from atento.captioning.encoder import FEATURE_SIZE, ImageEncoder, to_regions
from atento.captioning.images import load_image
from atento.errors import AtentoError
from atento.models.captioning import ShowAttendTell
from atento.tasks.captioning import collate_features


def test_shapes_from_images_to_memory(flickr_mini):
    paths = sorted((flickr_mini / "images").iterdir())[:2]
    images = torch.stack([load_image(p) for p in paths])
    assert images.shape == (2, 3, 224, 224)
    assert -1.0 <= float(images.min()) < 0 < float(images.max()) <= 1.0
    maps = ImageEncoder.pretrained()(images)
    assert maps.shape == (2, FEATURE_SIZE, 7, 7)
    regions = to_regions(maps)
    assert regions.shape == (2, 49, FEATURE_SIZE)
    # region p is cell (p // 7, p % 7) of the map
    assert torch.equal(regions[1, 7 * 3 + 5], maps[1, :, 3, 5])
    model = ShowAttendTell(tgt_vocab=10, feature_size=FEATURE_SIZE, emb_size=8, hidden_size=24,
                           dropout=0.0)  # fmt: skip
    features, mask = collate_features(list(regions))
    enc = model.encode(features, mask)
    assert enc.memory.shape == (2, 49, 24)
    assert enc.memory_mask.dtype == torch.bool and bool(enc.memory_mask.all())


def test_encoder_is_frozen_and_classifies_like_imagenet():
    encoder = ImageEncoder.pretrained()
    assert not encoder.net.training
    assert not any(p.requires_grad for p in encoder.parameters())
    assert encoder.name.startswith("efficientnet-lite0:")


def test_grayscale_rgba_and_huge_images_are_converted(tmp_path):
    gray = tmp_path / "gray.png"
    Image.new("L", (30, 20), 128).save(gray)
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (40, 40), (255, 0, 0, 0)).save(rgba)  # fully transparent: white
    huge = tmp_path / "huge.jpg"
    Image.new("RGB", (4000, 3000), (0, 0, 255)).save(huge, quality=50)
    g, r, h = load_image(gray), load_image(rgba), load_image(huge)
    assert g.shape == r.shape == h.shape == (3, 224, 224)
    assert torch.allclose(r, torch.ones_like(r))  # transparency composited on white
    assert float(h[2].mean()) > 0.9 and float(h[0].mean()) < -0.9


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "truncated"])
def test_bad_image_files_are_one_line_errors(tmp_path, flickr_mini, kind):
    path = tmp_path / f"{kind}.jpg"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("not an image\n")
    elif kind == "truncated":
        real = next((flickr_mini / "images").iterdir()).read_bytes()
        path.write_bytes(real[: len(real) // 3])
    with pytest.raises(AtentoError) as err:
        load_image(path)
    message = str(err.value)
    assert str(path) in message and "\n" not in message
