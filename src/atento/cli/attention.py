"""`atento attention RUN_DIR "a source sentence" --out FILE.png` (or `--src FILE --out DIR`).

For a captioning run the argument is an image: `atento attention RUN IMAGE.jpg --out F.png`
draws the image once per output word with the attention over its regions laid over it.

Decodes with the translate settings (--beam, --alpha) and draws the best hypothesis's attention:
source pieces along the top, output pieces down the side, a colour bar. With --src every line
gets its own `NNNN.png` in the --out folder. For Transformer runs the drawn matrix is the
cross-attention of decoder layer --layer (default: the last) and head --head (default: the mean
over heads); --grid draws every head of that layer side by side in one PNG instead.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from atento.cli.analysis_io import show_progress
from atento.cli.common import add_search_args, configured, open_run, read_input
from atento.errors import AtentoError
from atento.inference import Translator
from atento.rundir import LoadedRun

if TYPE_CHECKING:
    from atento.analysis.heatmap import Heatmap
    from atento.search import Hypothesis


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("attention", help="draw the attention heatmap of a decoded sentence")
    p.add_argument("run_dir", help="run directory written by `atento train`")
    p.add_argument("sentence", nargs="?", help="the source sentence (or use --src)")
    p.add_argument("--src", help="file of source sentences: one PNG each into the --out folder")
    p.add_argument("--out", required=True, help="PNG file (one sentence) or folder (--src)")
    p.add_argument("--layer", type=int, help="Transformer: decoder layer (default -1, the last)")
    p.add_argument("--head", type=int, help="Transformer: head 0..H-1 (default: mean of heads)")
    p.add_argument("--grid", action="store_true", help="Transformer: all heads of the layer")
    add_search_args(p)
    p.set_defaults(run=run)


def _with_view(translator: Translator, loaded: LoadedRun, args: argparse.Namespace) -> Translator:
    """--layer / --head as the translator's `DecodeOptions` for a Transformer; refuse them (and
    --grid) for other models. Out-of-range values are a one-line error."""
    if not hasattr(loaded.model, "attention_heads"):  # one attention: the RNN
        if args.layer is not None or args.head is not None or args.grid:
            raise AtentoError(
                f"--layer, --head and --grid apply to Transformer runs; {args.run_dir} is "
                f"model.arch={loaded.cfg.model.arch} with one attention"
            )
        if loaded.cfg.model.attention == "none":
            raise AtentoError(f"{args.run_dir} has no attention to draw (model.attention=none)")
        return translator
    if args.grid and args.head is not None:
        raise AtentoError("--grid draws every head; leave out --head")
    try:
        return translator.with_options(layer=args.layer, head=args.head)
    except ValueError as exc:
        raise AtentoError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    from atento.analysis.heatmap import hypothesis_heatmap

    if (args.sentence is None) == (args.src is None):
        raise AtentoError("give either one sentence or --src FILE, not both or neither")
    loaded = open_run(args.run_dir)
    if loaded.cfg.task == "caption":  # the sentence is an image: drawn on the image itself
        from atento.cli.caption import draw_attention

        return draw_attention(loaded, args)
    translator = _with_view(configured(loaded.translator(), args), loaded, args).with_attention()
    sentences = read_input(args.src) if args.src else [args.sentence]
    if not any(s.strip() for s in sentences):
        raise AtentoError("empty input: no source sentence to decode")
    results = translator.translate(sentences, progress=show_progress(args))
    out = Path(args.out)
    layer = -1 if args.layer is None else args.layer
    for i, (sentence, hyps) in enumerate(zip(sentences, results, strict=True), 1):
        path = out / f"{i:04d}.png" if args.src else out
        heatmap = hypothesis_heatmap(sentence, hyps[0], loaded.src_tok, loaded.tgt_tok, path)
        if args.grid:
            _draw_heads(loaded, sentence, hyps[0], heatmap, layer)
        print(f"{heatmap.path}\t{sentence}\t{loaded.tgt_tok.decode(hyps[0].tokens)}")
    if args.src:
        print(f"{len(sentences)} heatmaps in {out}", file=sys.stderr)
    return 0


@torch.no_grad()
def _draw_heads(
    loaded: LoadedRun, sentence: str, hyp: Hypothesis, heatmap: Heatmap, layer: int
) -> None:
    """Overwrite heatmap.path with one panel per head: teacher-forced weights (H, T, S)."""
    import matplotlib.pyplot as plt

    from atento.data.batching import collate_sources
    from atento.data.vocab import BOS_ID

    device = next(loaded.model.parameters()).device
    src_ids, src_mask = collate_sources([loaded.src_tok.encode(sentence)])  # (1, S)
    tgt_in = torch.tensor([[BOS_ID, *hyp.tokens]])  # (1, T)
    heads = loaded.model.attention_heads(
        src_ids.to(device), src_mask.to(device), tgt_in.to(device), layer
    )[0].cpu()  # (H, T, S)
    rows, cols = len(heatmap.tgt_labels), len(heatmap.src_labels)
    heads = heads[:, :rows, :cols].float()
    n = heads.size(0)
    grid_cols = min(n, 4)
    grid_rows = math.ceil(n / grid_cols)
    size = (min(1.5 + 0.3 * cols, 12.0) * grid_cols, min(1.2 + 0.28 * rows, 12.0) * grid_rows)
    fig, axes = plt.subplots(grid_rows, grid_cols, figsize=size, squeeze=False)
    for h, ax in enumerate(axes.flat):
        if h >= n:
            ax.axis("off")
            continue
        ax.imshow(heads[h].numpy(), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(cols), labels=heatmap.src_labels, rotation=90, fontsize=7)
        ax.set_yticks(range(rows), labels=heatmap.tgt_labels, fontsize=7)
        ax.xaxis.tick_top()
        ax.set_title(f"layer {layer % loaded.model.n_layers}, head {h}", fontsize=9, pad=10)
    fig.suptitle(f"{sentence} -> {loaded.tgt_tok.decode(hyp.tokens)}", fontsize=9)
    fig.tight_layout()
    meta = {"atento:rows": str(rows), "atento:cols": str(cols), "atento:heads": str(n)}
    fig.savefig(heatmap.path, dpi=100, metadata=meta)
    plt.close(fig)
