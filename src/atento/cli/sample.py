"""`atento sample RUN_DIR [--prompt TEXT] [--max-new N] [--temperature T] [--top-k K]
[--top-p P] [--seed S] [--num N]`: text from a language-model run, streamed as it comes, or a
sampled translation of --prompt from a translation run (e.g. for back-translation).

A language model reads the prompt in one pass that fills the KV cache, then one token per step
(`atento.search.sampling`); the same seed gives the same text. An empty prompt starts from a
line break (as nanoGPT does).
"""

from __future__ import annotations

import argparse
import sys

from atento.cli.common import open_run
from atento.errors import warn
from atento.options import PRECISION_CHOICES as PRECISIONS_CHOICES
from atento.options import SampleOptions


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="sample text from a language-model run (KV-cached), or "
                       "a translation of --prompt")  # fmt: skip
    p.add_argument("run_dir", help="run directory written by `atento train` (lm, translation)")
    p.add_argument("--prompt", default="", help="text to continue (default: a line break)")
    p.add_argument("--max-new", type=int, default=200, help="new tokens per sample")
    p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy")
    p.add_argument("--top-k", type=int, default=0, help="sample among the k most likely (0: all)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus: the smallest set of mass p")
    p.add_argument("--seed", type=int, default=1, help="the same seed gives the same text")
    p.add_argument("--num", type=int, default=1, help="samples (decoded as one batch)")
    p.add_argument(
        "--keep-last",
        action="store_true",
        help="a prompt longer than the context: keep its last tokens (else an error)",
    )
    p.add_argument("--no-cache", action="store_true", help="re-read the text every step (slow)")
    p.add_argument("--precision", choices=PRECISIONS_CHOICES, help="default: the run's")
    p.set_defaults(run=run)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    options = SampleOptions(
        max_new=args.max_new, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
        seed=args.seed, num=args.num, keep_last=args.keep_last, use_cache=not args.no_cache,
    ).check()  # fmt: skip
    loaded = open_run(args.run_dir)
    predictor = loaded.predictor.require("sample", command="sample")
    precision = args.precision or loaded.placement.precision
    if args.no_cache and precision != "fp32":
        warn(
            f"note: --no-cache gives the cached path's tokens in fp32; this run samples in "
            f"{precision}, where the two paths round differently (--precision fp32 to compare)"
        )
    stream = args.num == 1
    done: list[int] = []

    def on_step(tokens: list[int]) -> None:  # print what the new token adds to the text
        if stream and tokens:
            before = predictor.decode(done)
            done.append(tokens[0])
            sys.stdout.write(predictor.decode(done)[len(before) :])
            sys.stdout.flush()

    if stream:
        sys.stdout.write(args.prompt)
    outputs = predictor.sample([args.prompt], options, precision=args.precision, on_step=on_step)
    if stream:
        sys.stdout.write("\n")
    else:
        for i, out in enumerate(outputs):
            sys.stdout.write(f"--- sample {i + 1}\n{args.prompt}{predictor.decode(out)}\n")
    return 0
