"""`atento evaluate RUN_DIR --src FILE --ref FILE [--beam K] [--alpha A] [--json]
[--by-length FILE.png [--buckets 10,15,20]]`."""

from __future__ import annotations

import argparse
import sys
import time

from atento.cli.common import add_search_args, configured, print_json
from atento.data.parallel import read_parallel
from atento.errors import AtentoError
from atento.inference import load_run
from atento.training.metrics import corpus_scores


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="decode a test set and score it with sacreBLEU and chrF")
    p.add_argument("run_dir", help="run directory written by `atento train`")
    p.add_argument("--src", required=True, help="source file (plain or .gz)")
    p.add_argument("--ref", required=True, help="reference file, line-aligned with --src")
    add_search_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--hyp-out", help="also write the hypotheses to this file")
    p.add_argument("--by-length", help="PNG file: BLEU by source length (adds `by_length`)")
    p.add_argument("--buckets", default="10,15,20,25,30,40", help="--by-length bucket edges")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    edges = None
    if args.by_length:
        from atento.analysis.length import parse_edges

        edges = parse_edges(args.buckets)
    loaded = load_run(args.run_dir)
    translator = configured(loaded.translator(), args)
    pairs = read_parallel(args.src, args.ref)
    if not pairs:
        raise AtentoError(f"empty input: {args.src} has no lines")
    sources, refs = [s for s, _ in pairs], [r for _, r in pairs]
    start = time.perf_counter()
    results = translator.translate(sources, progress=not args.json and sys.stderr.isatty())
    seconds = time.perf_counter() - start
    outputs = [loaded.tgt_tok.decode(h[0].tokens) for h in results]
    pieces = sum(len(h[0].tokens) for h in results)
    scores = corpus_scores(outputs, refs)
    report = {
        "bleu": scores.bleu,
        "chrf": scores.chrf,
        "sentences": len(pairs),
        "seconds": round(seconds, 3),
        "sentences_per_second": round(len(pairs) / max(seconds, 1e-9), 2),
        "output_pieces": pieces,
        "output_pieces_per_second": round(pieces / max(seconds, 1e-9), 1),
        "beam": translator.search.beam,
        "alpha": translator.search.alpha,
        "bleu_signature": scores.bleu_signature,
        "chrf_signature": scores.chrf_signature,
        "checkpoint_step": loaded.step,
    }
    if edges is not None:
        from atento.analysis.length import bleu_by_length, plot_bleu_by_length

        buckets = bleu_by_length(sources, outputs, refs, edges=edges)
        report["by_length"] = [b.to_json() for b in buckets]
        name = f"{loaded.path.name} (beam {translator.search.beam})"
        report["by_length_plot"] = str(plot_bleu_by_length({name: buckets}, args.by_length))
    if args.hyp_out:
        from atento.cli.common import write_text

        write_text(args.hyp_out, outputs)
    if args.json:
        print_json(report)
    else:
        print(f"BLEU {scores.bleu:.2f}  ({scores.bleu_signature})")
        print(f"chrF {scores.chrf:.2f}  ({scores.chrf_signature})")
        print(
            f"{len(pairs)} sentences in {seconds:.1f} s ({report['sentences_per_second']} sent/s), "
            f"beam {translator.search.beam}, alpha {translator.search.alpha}"
        )
        for b in report.get("by_length", []):
            low, high = b["bounds"]
            print(f"  source {low}-{high or ''} words: BLEU {b['bleu']:.2f} (n={b['sentences']})")
        if "by_length_plot" in report:
            print(f"BLEU by length plot: {report['by_length_plot']}")
    return 0
