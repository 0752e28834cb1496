"""`atento attention RUN_DIR "a source sentence" --out FILE.png` (or `--src FILE --out DIR`).

Decodes with the translate settings (--beam, --alpha) and draws the best hypothesis's attention:
source pieces along the top, output pieces down the side, a colour bar. With --src every line
gets its own `NNNN.png` in the --out folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from atento.cli.analysis_io import show_progress
from atento.cli.common import add_search_args, configured, read_input
from atento.errors import AtentoError
from atento.inference import load_run


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("attention", help="draw the attention heatmap of a decoded sentence")
    p.add_argument("run_dir", help="run directory written by `atento train`")
    p.add_argument("sentence", nargs="?", help="the source sentence (or use --src)")
    p.add_argument("--src", help="file of source sentences: one PNG each into the --out folder")
    p.add_argument("--out", required=True, help="PNG file (one sentence) or folder (--src)")
    add_search_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from atento.analysis.heatmap import hypothesis_heatmap

    if (args.sentence is None) == (args.src is None):
        raise AtentoError("give either one sentence or --src FILE, not both or neither")
    loaded = load_run(args.run_dir)
    if loaded.cfg.model.attention == "none":
        raise AtentoError(f"{args.run_dir} has no attention to draw (model.attention=none)")
    translator = configured(loaded.translator(), args)
    sentences = read_input(args.src) if args.src else [args.sentence]
    if not any(s.strip() for s in sentences):
        raise AtentoError("empty input: no source sentence to decode")
    results = translator.translate(sentences, progress=show_progress(args))
    out = Path(args.out)
    for i, (sentence, hyps) in enumerate(zip(sentences, results, strict=True), 1):
        path = out / f"{i:04d}.png" if args.src else out
        heatmap = hypothesis_heatmap(sentence, hyps[0], loaded.src_tok, loaded.tgt_tok, path)
        print(f"{heatmap.path}\t{sentence}\t{loaded.tgt_tok.decode(hyps[0].tokens)}")
    if args.src:
        print(f"{len(sentences)} heatmaps in {out}", file=sys.stderr)
    return 0
