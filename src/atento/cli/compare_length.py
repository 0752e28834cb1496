"""`atento compare-length RUN_A RUN_B ... --src F --ref F --out FILE.png [--json]`.

BLEU by source length for several runs on one plot (Bahdanau et al. 2015, Fig. 2): e.g. an
encoder-decoder without attention against one with attention, on the same test set.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from atento.cli.analysis_io import read_pairs, show_progress
from atento.cli.common import (
    add_line_args,
    add_search_args,
    decoder,
    line_policy,
    open_run,
    print_json,
)
from atento.errors import AtentoError
from atento.outputs import output_path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare-length", help="BLEU by source length of several runs, one plot")
    p.add_argument("run_dirs", nargs="+", help="run directories written by `atento train`")
    p.add_argument("--src", required=True, help="source file (plain or .gz)")
    p.add_argument("--ref", required=True, help="reference file, line-aligned with --src")
    add_line_args(p, too_long=False)
    p.add_argument("--out", required=True, help="PNG file for the plot")
    p.add_argument("--labels", help="comma-separated names for the runs (default: folder names)")
    p.add_argument("--buckets", default="10,15,20,25,30,40", help="bucket upper edges (words)")
    add_search_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from atento.analysis.length import bleu_by_length, parse_edges, plot_bleu_by_length
    from atento.training.metrics import corpus_bleu

    edges = parse_edges(args.buckets)
    output_path(args.out, option="--out")  # before any decoding
    names = [Path(d).name for d in args.run_dirs]
    if args.labels:
        names = [x.strip() for x in args.labels.split(",")]
        if len(names) != len(args.run_dirs):
            raise AtentoError(f"--labels has {len(names)} names for {len(args.run_dirs)} runs")
    sources, refs = read_pairs(args.src, args.ref, line_policy(args), drop_empty=True)
    runs = [open_run(d) for d in args.run_dirs]  # fail early on a bad directory
    decoders = [decoder(loaded, args, command="compare-length") for loaded in runs]
    systems, report = {}, {"sentences": len(sources), "systems": []}
    for name, loaded, (predictor, translator) in zip(names, runs, decoders, strict=True):
        results = predictor.translate(sources, translator, progress=show_progress(args))
        outputs = [predictor.decode(h[0].tokens) for h in results]
        buckets = bleu_by_length(sources, outputs, refs, edges=edges)
        systems[name] = buckets
        report["systems"].append({
            "name": name, "run_dir": str(loaded.path), "bleu": corpus_bleu(outputs, refs),
            "beam": translator.search.beam, "alpha": translator.search.alpha,
            "by_length": [b.to_json() for b in buckets],
        })  # fmt: skip
    report["plot"] = str(plot_bleu_by_length(systems, args.out))
    if args.json:
        print_json(report)
    else:
        for system in report["systems"]:
            cells = "  ".join(
                f"{b['bounds'][0]}-{b['bounds'][1] or ''}: {b['bleu']:.1f} (n={b['sentences']})"
                for b in system["by_length"]
            )
            print(f"{system['name']}: BLEU {system['bleu']:.2f} | {cells}")
        print(f"plot: {report['plot']}")
    return 0
