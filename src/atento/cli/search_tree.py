"""`atento search-tree RUN_DIR "a source sentence" --out tree.png` (or .svg): the beam tree.

Decodes the sentence with beam search (--beam, --alpha; defaults from the run's config) while
recording every step (`atento.search.trace`), and draws what the beam kept, finished and pruned,
with length-normalised scores, as a static figure for papers and slides; the same tree as the
page of `atento serve`. Prints the figure's path and the n-best.
"""

from __future__ import annotations

import argparse

from atento.errors import AtentoError
from atento.outputs import output_path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search-tree", help="draw the beam-search tree of one sentence")
    p.add_argument("run_dir", help="run directory written by `atento train`")
    p.add_argument("sentence", help="the source sentence")
    p.add_argument("--out", required=True, help="figure file: .png or .svg")
    p.add_argument("--beam", type=int, help="beam width K (default: config)")
    p.add_argument("--alpha", type=float, help="length normalisation score/Ty^alpha")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from atento.analysis.beam_tree import draw_beam_tree
    from atento.api import Model
    from atento.cli.common import open_run

    if not args.out.lower().endswith((".png", ".svg")):
        raise AtentoError(f"--out must end in .png or .svg, got {args.out}")
    if args.beam is not None and not 1 <= args.beam <= 50:
        raise AtentoError(f"--beam must be between 1 and 50 for a drawing, got {args.beam}")
    output_path(args.out, option="--out")
    loaded = open_run(args.run_dir)
    loaded.predictor.require("trace", command="search-tree")
    model = Model(loaded)
    trace = model.search_trace(args.sentence, beam=args.beam, alpha=args.alpha)
    best = trace["nbest"][0]["text"] if trace["nbest"] else ""
    title = f"{args.sentence} -> {best}  (beam {trace['beam_size']}, alpha {trace['alpha']:g})"
    path = draw_beam_tree(trace, args.out, title=title)
    print(path)
    for n in trace["nbest"]:
        print(f"{n['score']:.4f}\t{n['text']}")
    return 0
