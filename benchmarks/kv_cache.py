"""Beam-search decoding speed of a Transformer with and without the key/value cache.

    python benchmarks/kv_cache.py runs/multi30k_transformer            # a trained run (preferred)
    python benchmarks/kv_cache.py --config configs/multi30k_fr_en_transformer.yaml   # untrained
    python benchmarks/kv_cache.py RUN --quick                            # 24 sentences, smoke run

Decodes Multi30k test_2016_flickr (`../shared/data/multi30k` beside the checkout, or --data)
with beam 5 twice in one process, through the same `model.step` API: once with the KV cache
(each step feeds one token; self-attention keys/values grow by one step, cross-attention
keys/values are projected once per source) and once without (`DecodeOptions(use_cache=False)`:
each step re-runs the decoder over the whole prefix). Prints one JSON line with both rates in
sentences/s and output pieces/s, their ratio, and how many outputs agree. The two modes
alternate `--repeats` times and the best time of each is kept, which is fair under a varying load.

Without a run directory the model is freshly initialised at the config's size, with a joint
SentencePiece vocabulary trained on the fly on Multi30k train: its outputs rarely end, so nearly
every hypothesis runs to the maximum length (1.5 * source + 10), the cache's best case.
A trained run gives the realistic numbers. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from atento.config_io import load_config  # noqa: E402
from atento.data.corpus import load_split  # noqa: E402
from atento.data.tokenizers import build_tokenizer  # noqa: E402
from atento.inference import Translator  # noqa: E402
from atento.registry import build_model  # noqa: E402
from atento.rundir import load_run  # noqa: E402


def _untrained(config: str, data_dir: str, vocab_size: int | None):
    """A fresh model of the config's size and a SentencePiece vocabulary trained now."""
    cfg = load_config(config, [f"data.dir={data_dir}"])
    train = load_split(cfg.data, "train")
    tok = build_tokenizer(
        "sentencepiece", [s for s, _ in train] + [t for _, t in train],
        vocab_size=vocab_size or cfg.data.vocab_size, run_dir=None, name="joint",
    )  # fmt: skip
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg, src_vocab=tok.vocab_size, tgt_vocab=tok.vocab_size)
    return cfg, Translator(model.eval(), tok, tok, cfg.search)


def _time(translator: Translator, sources: list[str], use_cache: bool) -> tuple[float, list]:
    """Seconds to decode `sources` in one mode, and the hypotheses."""
    translator = translator.with_options(use_cache=use_cache)
    start = time.perf_counter()
    hyps = translator.translate(sources)
    return time.perf_counter() - start, hyps


def _measure(translator: Translator, sources: list[str], repeats: int) -> dict:
    """Both modes, alternating `repeats` times (fair under a varying load); best time each."""
    translator.translate(sources[:4])  # warm-up (allocator, kernels)
    best: dict[bool, tuple[float, list]] = {}
    for _ in range(repeats):
        for use_cache in (True, False):
            seconds, hyps = _time(translator, sources, use_cache)
            if use_cache not in best or seconds < best[use_cache][0]:
                best[use_cache] = (seconds, hyps)
    report = {}
    for use_cache, (seconds, hyps) in best.items():
        pieces = sum(h[0].length for h in hyps)
        report["cached" if use_cache else "uncached"] = {
            "seconds": round(seconds, 2),
            "sentences_per_second": round(len(sources) / seconds, 2),
            "pieces_per_second": round(pieces / seconds, 1),
            "mean_output_pieces": round(pieces / len(sources), 2),
        }
    same = sum(
        a[0].tokens == b[0].tokens for a, b in zip(best[True][1], best[False][1], strict=True)
    )
    return {**report, "identical_outputs": same}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", help="trained Transformer run (else untrained)")
    parser.add_argument("--config", default=str(ROOT / "configs/multi30k_fr_en_transformer.yaml"))
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/multi30k"))
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=0, help="0 = the config's")
    parser.add_argument("--sentences", type=int, default=0, help="0 = all 1,000")
    parser.add_argument("--vocab-size", type=int, default=0, help="untrained: 0 = the config's")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = default")
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs; best kept")
    parser.add_argument(
        "--precision", choices=("auto", "fp32", "bf16"), help="decoding precision; default: run's"
    )
    parser.add_argument("--workers", type=int, default=0, help="decoding threads; 0 = config's")
    parser.add_argument("--quick", action="store_true", help="24 sentences, 2 repeats (smoke)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.run_dir:
        loaded = load_run(args.run_dir)
        cfg, translator = loaded.cfg, loaded.translator()
    else:
        cfg, translator = _untrained(args.config, args.data, args.vocab_size or None)
    if cfg.model.arch != "transformer":
        sys.exit(
            f"kv_cache.py: {args.run_dir} is not a Transformer run (model.arch={cfg.model.arch})"
        )
    cfg.data.dir = args.data  # the test set always comes from --data
    sources = [s for s, _ in load_split(cfg.data, "test")]
    limit = 24 if args.quick else args.sentences
    repeats = 2 if args.quick else max(1, args.repeats)
    sources = sources[:limit] if limit else sources
    translator = translator.with_search(
        beam=args.beam, nbest=1, batch_size=args.batch_size or None, workers=args.workers or None,
    )  # fmt: skip
    if args.precision:
        translator = translator.with_precision(args.precision)
    with torch.inference_mode():
        result = _measure(translator, sources, repeats)
    print(json.dumps({
        "run": args.run_dir or f"untrained {Path(args.config).name}",
        "sentences": len(sources), "beam": args.beam,
        "batch_size": translator.search.batch_size, "precision": translator.placement.precision,
        "workers": translator.search.workers,
        "max_len": f"{cfg.search.max_len_a} * source + {cfg.search.max_len_b}",
        "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "load_average": round(os.getloadavg()[0], 2),
        "repeats": repeats, **result,
        "speedup": round(
            result["cached"]["sentences_per_second"] / result["uncached"]["sentences_per_second"], 2
        ),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
