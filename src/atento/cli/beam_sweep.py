"""`atento beam-sweep RUN_DIR --src F --ref F --beams 1,2,3,5,10 [--alpha A] [--plot FILE.png]`.

Captioning runs take `--split dev` (or `--captions TSV --images DIR`) instead of --src/--ref;
their BLEU is BLEU-4 against all references of each image.

Decodes the set once per beam width (and per alpha with --alphas) and reports BLEU, chrF, the
mean length-normalised score and sentences/s for each: the lecture's diminishing returns.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from atento.cli.analysis_io import reference_corpus, show_progress
from atento.cli.common import add_line_args, open_run, print_json
from atento.options import SearchOptions, check_beam
from atento.outputs import output_path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("beam-sweep", help="BLEU and speed against beam width")
    p.add_argument("run_dir", help="run directory written by `atento train`")
    p.add_argument("--src", help="source file (plain or .gz); captioning runs: --split")
    p.add_argument("--ref", help="reference file, line-aligned with --src")
    add_line_args(p, too_long=False)
    p.add_argument("--beams", default="1,2,3,5,10", help="beam widths, e.g. 1,2,3,5,10")
    p.add_argument("--alpha", type=float, help="length normalisation alpha; default: config")
    p.add_argument("--alphas", help="several alphas, e.g. 0,0.5,0.7,1 (overrides --alpha)")
    p.add_argument("--batch-size", type=int, help="sentences per decoding batch")
    p.add_argument("--plot", help="PNG file: BLEU and sentences/s against beam width")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    from atento.cli.caption import add_image_set_args

    add_image_set_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from atento.analysis import sweep

    beams = sweep.parse_int_list(args.beams, name="--beams")
    if args.plot:  # before the sweep
        output_path(args.plot, option="--plot")
    loaded = open_run(args.run_dir)
    alphas = [loaded.cfg.search.alpha if args.alpha is None else args.alpha]
    if args.alphas:
        alphas = sweep.parse_float_list(args.alphas, name="--alphas")
    for alpha in alphas:
        check_beam(1, alpha=alpha)
    predictor, corpus = reference_corpus(loaded, args, command="beam-sweep")
    translator = predictor.base_translator()
    search = SearchOptions(batch_size=args.batch_size).resolve(translator.search)  # checked
    translator = replace(translator, search=search)
    sources, encoded = corpus.sources, corpus.encoded
    if all(len(r) == 1 for r in corpus.references):
        refs, scorer = [r[0] for r in corpus.references], None
    else:  # several references per source (captions): BLEU-4 against all of them
        from atento.training.metrics import caption_bleu

        refs = corpus.references

        def scorer(outputs: list[str]) -> tuple[float, float]:
            scores = caption_bleu(outputs, refs)
            return scores.bleu[3], scores.chrf

    points = sweep.beam_sweep(
        translator, sources, refs, beams=beams, alphas=alphas, progress=show_progress(args),
        encoded=encoded, scorer=scorer,
    )  # fmt: skip
    report = {"sentences": len(sources), "beams": beams, "alphas": alphas}
    report["results"] = sweep.points_to_json(points)
    if args.plot:
        report["plot"] = str(sweep.plot_sweep(points, args.plot))
    if args.json:
        print_json(report)
        return 0
    print(f"{'beam':>4} {'alpha':>5} {'BLEU':>6} {'chrF':>6} {'mean score':>10} {'sent/s':>8}")
    for p in points:
        print(
            f"{p.beam:>4} {p.alpha:>5g} {p.bleu:>6.2f} {p.chrf:>6.2f} "
            f"{p.mean_score:>10.4f} {p.sentences_per_second:>8.1f}"
        )
    if args.plot:
        print(f"plot: {report['plot']}")
    return 0
