"""`atento attention RUN_DIR "a source sentence" --out FILE.png` (or `--src FILE --out DIR`).

For a language-model (or classifier) run the positional argument is a text and the drawing is
its self-attention: position (query) down the side, the positions it attends to along the top,
layer --layer, head --head (default: the mean of heads) or --grid for every head.
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
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from atento.cli.analysis_io import show_progress
from atento.cli.common import add_search_args, decoder, open_run, read_input
from atento.errors import AtentoError
from atento.options import ViewOptions
from atento.outputs import output_path
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


def run(args: argparse.Namespace) -> int:
    from atento.analysis.heatmap import hypothesis_heatmap

    if (args.sentence is None) == (args.src is None):
        raise AtentoError("give either one sentence or --src FILE, not both or neither")
    loaded = open_run(args.run_dir)
    predictor = loaded.predictor
    if predictor.offers("image_attention"):  # the sentence is an image: drawn on the image
        from atento.cli.caption import draw_attention

        return draw_attention(loaded, args)
    output_path(args.out, kind="dir" if args.src else "file", option="--out")
    if predictor.offers("self_attention"):
        return _self_attention(loaded, args)
    predictor.require("cross_attention", command="attention")
    if args.grid and args.head is not None:
        raise AtentoError("--grid draws every head; leave out --head")
    if args.grid and not hasattr(loaded.model, "attention_heads"):
        raise AtentoError(f"--grid applies to Transformer runs; {args.run_dir} is "
                          f"model.arch={loaded.cfg.model.arch} with one attention")  # fmt: skip
    view = ViewOptions(attention=True, layer=args.layer, head=args.head)
    _, translator = decoder(loaded, args, command="attention", view=view)
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
    from atento.analysis.heatmap import plot_heads
    from atento.data.batching import collate_sources

    device = next(loaded.model.parameters()).device
    src_tok, bos = loaded.src_tok, loaded.tgt_tok.search_ids()["bos_id"]
    src_ids, src_mask = collate_sources([src_tok.encode(sentence)], eos_id=src_tok.eos_id)
    tgt_in = torch.tensor([[bos, *hyp.tokens]])  # (1, T)
    heads = loaded.model.attention_heads(
        src_ids.to(device), src_mask.to(device), tgt_in.to(device), layer
    )[0].cpu()  # (H, T, S)
    rows, cols = len(heatmap.tgt_labels), len(heatmap.src_labels)
    plot_heads(heads[:, :rows, :cols], heatmap.src_labels, heatmap.tgt_labels, heatmap.path,
               layer=layer % loaded.model.n_layers,
               title=f"{sentence} -> {loaded.tgt_tok.decode(hyp.tokens)}")  # fmt: skip


def _self_attention(loaded: LoadedRun, args: argparse.Namespace) -> int:
    """Runs without a decoder to follow (language models, classifiers): the self-attention of
    --layer over the text itself, one head (--head), their mean, or every head (--grid)."""
    from atento.analysis.heatmap import plot_attention, plot_heads

    if args.grid and args.head is not None:
        raise AtentoError("--grid draws every head; leave out --head")
    texts = read_input(args.src) if args.src else [args.sentence]
    if not any(t.strip() for t in texts):
        raise AtentoError("empty input: no text to draw")
    out = Path(args.out)
    layer = -1 if args.layer is None else args.layer
    for i, text in enumerate(texts, 1):
        path = out / f"{i:04d}.png" if args.src else out
        heads, rows, cols = loaded.predictor.self_attention(text, layer=layer, head=args.head)
        shown = loaded.model.layer_index(layer)
        if args.grid:
            plot_heads(heads, cols, rows, path, layer=shown, title=text)
        else:
            if args.head is None and len(heads) > 1:
                weights, which = heads.mean(0), "mean of heads"
            else:  # the head asked for, or the only one
                weights, which = heads[args.head or 0], f"head {args.head or 0}"
            plot_attention(weights, cols, rows, path, title=f"layer {shown}, {which}: {text}",
                           xlabel="attended to (key)", ylabel="position (query)")  # fmt: skip
        print(f"{path}\t{text}")
    if args.src:
        print(f"{len(texts)} heatmaps in {out}", file=sys.stderr)
    return 0
