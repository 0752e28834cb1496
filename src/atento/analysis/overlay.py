"""Visual attention drawn on the image, once per output word (Xu et al. 2015, Figs. 2-3).

A captioning hypothesis carries its attention like a translation does: one row per output
step over the P = H x W regions, (Ty, P). Each row is reshaped to the H x W grid, upsampled to
the image's size (bicubic), smoothed with a Gaussian and laid over the image (bright =
attended). The PNG carries `atento:rows` (steps drawn) and `atento:cols` (regions) like the
heatmaps of `atento.analysis.heatmap`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from torch import Tensor

from atento.analysis.plotting import plt, save_figure


def attention_mask(weights: Tensor, size: tuple[int, int], *, blur: float = 0.0) -> np.ndarray:
    """One step's weights (P,) over a square grid -> an (H, W) map at the image's `size`
    (width, height), scaled to [0, 1], upsampled bicubically and smoothed (Gaussian radius
    `blur` pixels; 0 = size / 28, about the paper's smoothing at 224 pixels)."""
    P = weights.numel()
    grid = math.isqrt(P)
    if grid * grid != P:
        raise ValueError(f"{P} regions do not form a square grid")
    cells = weights.detach().float().cpu().reshape(grid, grid).numpy()
    peak = cells.max()
    cells = cells / peak if peak > 0 else cells
    img = Image.fromarray((cells * 255).astype(np.uint8), mode="L")
    img = img.resize(size, Image.Resampling.BICUBIC)
    img = img.filter(ImageFilter.GaussianBlur(blur or max(size) / 28))
    return np.asarray(img, dtype=np.float32) / 255.0


def plot_caption_attention(
    image: Image.Image, words: Sequence[str], weights: Tensor, path: str | Path, *,
    title: str = "", columns: int = 5,
) -> Path:  # fmt: skip
    """The image, then one panel per word with that step's attention (T, P) overlaid."""
    weights = weights.detach().float().cpu()
    if weights.size(0) != len(words):
        raise ValueError(f"{weights.size(0)} attention rows for {len(words)} words")
    panels = len(words) + 1
    cols = min(columns, panels)
    rows = math.ceil(panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.4 * rows), squeeze=False)
    pixels = np.asarray(image)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= panels:
            continue
        ax.imshow(pixels)
        if k == 0:
            ax.set_title("image", fontsize=9)
            continue
        mask = attention_mask(weights[k - 1], image.size)
        ax.imshow(mask, cmap="gray", alpha=0.65, vmin=0.0, vmax=1.0)
        ax.set_title(words[k - 1], fontsize=10)
    if title:
        fig.suptitle(title, fontsize=9)
    meta = {"atento:rows": str(len(words)), "atento:cols": str(weights.size(1))}
    return save_figure(fig, path, metadata=meta)
