"""`atento demo [--out DIR]`: train the dates model, show it working, draw its attention."""

from __future__ import annotations

import argparse
import json
import time
from importlib import resources
from pathlib import Path

from atento.cli.common import start_runtime
from atento.config_io import load_config
from atento.outputs import output_path, write_text
from atento.registry import placement_for

SHOWCASE = [
    "Tuesday, 9 April 1974",
    "09.04.74",
    "april 9 1974",
    "samedi 14 juillet 2018",
    "3. Oktober 1990",
    "20 de julio de 1969",
]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="train and show the dates model (no download, minutes on a CPU)"
    )
    p.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo)")
    p.add_argument("overrides", nargs="*", help="key.path=value overrides of the demo config")
    p.set_defaults(run=run)


def demo_config_path() -> Path:
    return Path(str(resources.files("atento") / "resources" / "dates.yaml"))


def run(args: argparse.Namespace) -> int:
    from atento.analysis.heatmap import plot_attention
    from atento.data.corpus import load_split
    from atento.rundir import load_run
    from atento.training.loop import Trainer
    from atento.training.run_files import has_checkpoint

    start = time.perf_counter()
    cfg = load_config(demo_config_path(), args.overrides)
    out = output_path(args.out, kind="dir", option="--out")
    print(f"atento demo: dates in many formats and languages -> ISO 8601, run directory {out}")
    placement = placement_for(cfg)
    start_runtime(cfg.runtime, placement, training=True)
    result = Trainer(cfg, out, resume=has_checkpoint(out), placement=placement).fit()

    loaded = load_run(out)
    translator = loaded.translator()
    test = load_split(cfg.data, "test")
    outputs = translator.best_strings([s for s, _ in test], progress=True)
    exact = sum(o == t for o, t in zip(outputs, (t for _, t in test), strict=True)) / len(test)

    shown = translator.with_attention().translate(SHOWCASE)
    print("\nexamples:")
    for src, hyps in zip(SHOWCASE, shown, strict=True):
        print(f"  {src:<28} -> {loaded.tgt_tok.decode(hyps[0].tokens)}")
    for (src, tgt), out_str in list(zip(test, outputs, strict=True))[:4]:
        mark = "ok" if out_str == tgt else f"expected {tgt}"
        print(f"  {src:<28} -> {out_str}   [{mark}]")

    hyp = shown[0][0]
    src_labels = loaded.src_tok.pieces(SHOWCASE[0]) + ["</s>"]
    tgt_labels = [loaded.tgt_tok.id_to_piece(i) for i in hyp.tokens] + ["</s>"]
    heatmap = None
    if hyp.attention is not None:
        heatmap = plot_attention(
            hyp.attention[:, : len(src_labels)], src_labels, tgt_labels[: hyp.attention.size(0)],
            out / "attention.png", title=f"{SHOWCASE[0]} -> {loaded.tgt_tok.decode(hyp.tokens)}",
        )  # fmt: skip
    summary = {
        "exact_match": round(exact, 4),
        "test_sentences": len(test),
        "seconds": round(time.perf_counter() - start, 1),
        "train_seconds": result.seconds,
        "steps": result.steps,
        "parameters": result.parameters,
        "best_valid_bleu": result.best_score,
        "train_tokens_per_second": result.throughput,
        "beam": translator.search.beam,
        "heatmap": str(heatmap) if heatmap else None,
        "examples": {
            s: loaded.tgt_tok.decode(h[0].tokens) for s, h in zip(SHOWCASE, shown, strict=True)
        },
    }
    write_text(out / "summary.json", json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    print(f"\nexact match on {len(test)} held-out dates: {exact:.4f}")
    if heatmap:
        print(f"attention heatmap: {heatmap}")
    print(f"summary: {out / 'summary.json'} ({summary['seconds']:.0f} s in all)")
    return 0
