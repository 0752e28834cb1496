"""`atento search-errors RUN_DIR --src F --ref F [--beam K] [--alpha A] [--json] [--report F.md]
[--beams 1,5,20] [--exact [--exact-max-len N] [--exact-seconds S]]`.

Captioning runs take `--split dev` (or `--captions TSV --images DIR`) instead of --src/--ref:
every image has several references, and y* is the one the model scores highest.

The lecture's beam-search error analysis over a dev set (see `atento.analysis.search_errors`):
who is at fault for each wrong output, the search or the model, and what to do about it.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from atento.cli.analysis_io import reference_corpus, show_progress
from atento.cli.common import add_line_args, add_search_args, open_run, print_json, search_options
from atento.errors import AtentoError
from atento.outputs import output_path, write_text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search-errors", help="beam-search error analysis: search or model?")
    p.add_argument("run_dir", help="run directory written by `atento train`")
    p.add_argument("--src", help="source file (plain or .gz); captioning runs: --split")
    p.add_argument("--ref", help="reference file, line-aligned with --src")
    add_line_args(p, too_long=False)
    add_search_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--report", help="write the whole table as Markdown to this file")
    p.add_argument("--show", type=int, default=10, help="worst cases to print (default 10)")
    p.add_argument("--beams", help="also analyse these widths, e.g. 1,5,20")
    p.add_argument("--exact", action="store_true", help="exact search on short sentences")
    p.add_argument(
        "--exact-max-len", type=int, default=12, help="longest source for --exact (pieces)"
    )
    p.add_argument(
        "--exact-seconds", type=float, default=10.0, help="time limit per sentence for --exact"
    )
    from atento.cli.caption import add_image_set_args

    add_image_set_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from atento.analysis.search_errors import advice, analyse_beams_several, check_exact
    from atento.analysis.sweep import parse_int_list

    extra_beams = parse_int_list(args.beams, name="--beams") if args.beams is not None else []
    if args.exact and (args.exact_max_len < 1 or args.exact_seconds <= 0):
        raise AtentoError("--exact-max-len must be >= 1 and --exact-seconds > 0")
    if args.report:  # before the analysis
        output_path(args.report, option="--report")
    loaded = open_run(args.run_dir)
    predictor, corpus = reference_corpus(loaded, args, command="search-errors")
    # scores are compared to 1e-4 with teacher-forced ones: fp32 unless --precision says so
    options = search_options(args)
    options = replace(options, precision=options.precision or "fp32")
    translator = predictor.translator(options).with_search(nbest=1)
    sources, encoded = corpus.sources, corpus.encoded
    single = all(len(r) == 1 for r in corpus.references)
    refs = [r[0] for r in corpus.references] if single else None
    tok = loaded.tgt_tok
    ref_ids = [[tok.encode(r) for r in group] for group in corpus.references]
    widths = [translator.search.beam] + [k for k in extra_beams if k != translator.search.beam]
    progress = show_progress(args)
    reports = analyse_beams_several(translator, encoded, ref_ids, widths, progress=progress)
    main = reports[0]
    summary = main.summary()
    if args.beams is not None:
        by_beam = sorted(reports, key=lambda r: r.beam)
        summary["by_beam"] = [
            {k: r.summary()[k] for k in ("beam", "errors", "search_errors", "model_errors",
                                          "search_error_fraction")}
            for r in by_beam
        ]  # fmt: skip
    if args.exact:
        summary["exact"] = check_exact(
            translator, main, max_source_len=args.exact_max_len, seconds=args.exact_seconds,
            progress=progress,
        )  # fmt: skip
    summary["advice"] = advice(main, summary.get("exact"))
    texts = _Texts(sources, refs, predictor.decode)
    if args.report:
        write_text(args.report, _markdown(main, summary, texts), option="--report")
        summary["report"] = args.report
    if args.json:
        print_json(summary)
    else:
        _print_text(main, summary, texts, args.show)
    return 0


class _Texts:
    """Source, reference and decoded output strings of the verdicts, for display."""

    def __init__(self, sources, refs, decode) -> None:
        self.sources, self.refs, self.decode = sources, refs, decode

    def row(self, v) -> tuple[str, str, str]:
        ref = self.decode(v.reference_ids) if self.refs is None else self.refs[v.index]
        return self.sources[v.index], ref, self.decode(v.output_ids)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def _print_text(report, summary: dict, texts: _Texts, show: int) -> None:
    worst = report.worst(max(show, 0))
    if worst:
        print(f"worst {len(worst)} errors (largest |score(y*) - score(y_hat)|):")
        print(f"{'source':<30} {'human y*':<30} {'algorithm y_hat':<30} "
              f"{'sc(y*)':>8} {'sc(y_hat)':>9} fault")  # fmt: skip
        for v in worst:
            src, ref, out = (_cut(x, 30) for x in texts.row(v))
            print(f"{src:<30} {ref:<30} {out:<30} {v.reference_score:>8.3f} "
                  f"{v.output_score:>9.3f} {v.fault}")  # fmt: skip
        print()
    print(
        f"{summary['sentences']} sentences, beam {summary['beam']}, alpha {summary['alpha']}: "
        f"{summary['errors']} differ from the reference; {summary['search_errors']} search "
        f"errors, {summary['model_errors']} model errors "
        f"(search share {summary['search_error_fraction']:.1%})"
    )
    for row in summary.get("by_beam", []):
        print(
            f"  beam {row['beam']:>3}: {row['errors']} errors, {row['search_errors']} search, "
            f"{row['model_errors']} model ({row['search_error_fraction']:.1%} search)"
        )
    if "exact" in summary:
        e = summary["exact"]
        print(
            f"exact search on {e['checked']} sentences of <= {e['max_source_len']} pieces: "
            f"the beam missed the model's best output in {e['search_errors']} "
            f"({e['search_error_fraction']:.1%}); {e['timeouts']} timed out"
        )
    print(summary["advice"])


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown(report, summary: dict, texts: _Texts) -> str:
    lines = [
        f"# Beam-search error analysis: beam {report.beam}, alpha {report.alpha}", "",
        f"- sentences: {report.sentences}", f"- errors (output differs): {report.errors}",
        f"- search errors: {report.search_errors}", f"- model errors: {report.model_errors}",
        f"- search error fraction: {report.search_error_fraction:.4f}", "",
        summary["advice"], "",
        "| # | source | human y* | algorithm y_hat | score(y*) | score(y_hat) | at fault |",
        "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for v in report.verdicts:
        src, ref, out = (_md(x) for x in texts.row(v))
        lines.append(
            f"| {v.index + 1} | {src} | {ref} | {out} | {v.reference_score:.4f} "
            f"| {v.output_score:.4f} | {v.fault} |"
        )
    return "\n".join(lines) + "\n"
