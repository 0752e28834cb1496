"""Attention heatmaps as PNG files: output pieces down the side, source pieces along the top."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from torch import Tensor  # noqa: E402


def plot_attention(
    weights: Tensor,
    src_labels: Sequence[str],
    tgt_labels: Sequence[str],
    path: str | Path,
    *,
    title: str = "",
) -> Path:
    """Draw weights (T, S): one row per output piece, one column per source piece."""
    weights = weights.detach().float().cpu()
    rows, cols = weights.shape
    if rows != len(tgt_labels) or cols != len(src_labels):
        raise ValueError(
            f"weights are {rows}x{cols} but there are {len(tgt_labels)} output and "
            f"{len(src_labels)} source labels"
        )
    width = min(2.0 + 0.38 * cols, 30.0)
    height = min(1.6 + 0.34 * rows, 30.0)
    fig, ax = plt.subplots(figsize=(width, height))
    image = ax.imshow(weights.numpy(), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(cols), labels=list(src_labels), rotation=90)
    ax.set_yticks(range(rows), labels=list(tgt_labels))
    ax.xaxis.tick_top()
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        ax.set_title(title, fontsize=9, pad=12)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="attention weight")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
