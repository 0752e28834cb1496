"""Attention heatmaps as PNG files: output pieces down the side, source pieces along the top.

`plot_attention` draws any (T, S) weight matrix; `hypothesis_heatmap` labels a decoded
hypothesis (Bahdanau et al. 2015, Fig. 3): source pieces plus the EOS the encoder reads, output
pieces plus the EOS the decoder wrote. The PNG carries `atento:rows` / `atento:cols` text
chunks, so tools and tests can check the drawn matrix's shape without parsing pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor  # noqa: E402

from atento.analysis.plotting import plt, save_figure
from atento.data.tokenizers import Tokenizer  # noqa: E402
from atento.data.vocab import EOS_PIECE  # noqa: E402
from atento.search import Hypothesis  # noqa: E402


def plot_attention(
    weights: Tensor,
    src_labels: Sequence[str],
    tgt_labels: Sequence[str],
    path: str | Path,
    *,
    title: str = "",
    xlabel: str = "source",
    ylabel: str = "output",
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
    # at least room for the rotated labels and the colorbar's, a one-row map included
    height = min(max(1.6 + 0.34 * rows, 2.8), 30.0)
    fig, ax = plt.subplots(figsize=(width, height))
    image = ax.imshow(weights.numpy(), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(cols), labels=list(src_labels), rotation=90)
    ax.set_yticks(range(rows), labels=list(tgt_labels))
    ax.xaxis.tick_top()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9, pad=12)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="attention weight")
    return save_figure(fig, path, metadata={"atento:rows": str(rows), "atento:cols": str(cols)})


@dataclass
class Heatmap:
    """A drawn heatmap: weights (T, S), one row per output label, one column per source label."""

    path: Path | None
    weights: Tensor
    src_labels: list[str]
    tgt_labels: list[str]


def hypothesis_heatmap(
    sentence: str,
    hyp: Hypothesis,
    src_tok: Tokenizer,
    tgt_tok: Tokenizer,
    path: str | Path | None,
    *,
    title: str | None = None,
) -> Heatmap:
    """Label and draw hyp.attention (Ty, S_batch) for `sentence`; path None = no file.

    Columns: the sentence's pieces and the EOS appended to every source (padding columns of a
    batch are cut). Rows: the output pieces and, when finished, the EOS step.
    Raises ValueError when the model returned no attention (e.g. attention `none`).
    """
    if hyp.attention is None:
        raise ValueError("this model has no attention to draw (model.attention = none)")
    src_labels = [*src_tok.pieces(sentence), EOS_PIECE]
    tgt_labels = [tgt_tok.id_to_piece(i) for i in hyp.tokens]
    if hyp.finished:
        tgt_labels.append(EOS_PIECE)
    weights = hyp.attention[: len(tgt_labels), : len(src_labels)]  # (T, S)
    if title is None:
        title = f"{sentence} -> {tgt_tok.decode(hyp.tokens)}"
    out = (
        None if path is None else plot_attention(weights, src_labels, tgt_labels, path, title=title)
    )
    return Heatmap(out, weights, src_labels, tgt_labels)


def plot_heads(
    heads: Tensor,
    col_labels: Sequence[str],
    row_labels: Sequence[str],
    path: str | Path,
    *,
    layer: int,
    title: str = "",
) -> Path:
    """Draw every head of one layer side by side: heads (H, T, S), up to four panels a row.
    The PNG's `atento:heads` chunk gives H."""
    heads = heads.detach().float().cpu()
    n, rows, cols = heads.shape
    grid_cols = min(n, 4)
    grid_rows = math.ceil(n / grid_cols)
    size = (min(1.5 + 0.3 * cols, 12.0) * grid_cols, min(1.2 + 0.28 * rows, 12.0) * grid_rows)
    fig, axes = plt.subplots(grid_rows, grid_cols, figsize=size, squeeze=False)
    for h, ax in enumerate(axes.flat):
        if h >= n:
            ax.axis("off")
            continue
        ax.imshow(heads[h].numpy(), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(cols), labels=list(col_labels), rotation=90, fontsize=7)
        ax.set_yticks(range(rows), labels=list(row_labels), fontsize=7)
        ax.xaxis.tick_top()
        ax.set_title(f"layer {layer}, head {h}", fontsize=9, pad=10)
    if title:
        fig.suptitle(title, fontsize=9)
    meta = {"atento:rows": str(rows), "atento:cols": str(cols), "atento:heads": str(n)}
    return save_figure(fig, path, metadata=meta)
