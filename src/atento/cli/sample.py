"""`atento sample RUN_DIR [--prompt TEXT] [--max-new N] [--temperature T] [--top-k K]
[--top-p P] [--seed S] [--num N]`: text from a language-model run, streamed as it comes.

The prompt is read in one pass that fills the KV cache, then one token per step
(`atento.search.sampling`); the same seed gives the same text. An empty prompt starts from a
line break (as nanoGPT does).
"""

from __future__ import annotations

import argparse
import sys

import torch

from atento.cli.common import open_run
from atento.errors import AtentoError
from atento.runtime import PRECISIONS_CHOICES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="sample text from a language-model run (KV-cached)")
    p.add_argument("run_dir", help="run directory written by `atento train` (task: lm)")
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


def _check(args: argparse.Namespace) -> None:
    from atento.search.sampling import check_settings

    check_settings(max_new=args.max_new, temperature=args.temperature, top_k=args.top_k,
                   top_p=args.top_p, name=lambda key: "--" + key.replace("_", "-"))  # fmt: skip
    if not 1 <= args.num <= 1024:
        raise AtentoError(f"--num must be between 1 and 1024, got {args.num}")


def run(args: argparse.Namespace) -> int:
    from atento.search.sampling import sample
    from atento.tasks.lm import decode_text, prompt_ids

    _check(args)
    loaded = open_run(args.run_dir)
    if loaded.cfg.task != "lm":
        raise AtentoError(f"{args.run_dir} is a {loaded.cfg.task} run; sample needs task: lm")
    tok = loaded.tokenizers["text"]
    text = args.prompt if args.prompt else "\n"
    ids = prompt_ids(tok, text, loaded.model.length_limit(), keep_last=args.keep_last)
    placement = loaded.placement
    if args.precision:
        placement = placement.with_precision(args.precision, key="--precision")
    stream = args.num == 1
    done: list[int] = []

    def on_step(tokens: list[int]) -> None:  # print what the new token adds to the text
        if stream:
            before = decode_text(tok, done)
            done.append(tokens[0])
            sys.stdout.write(decode_text(tok, done)[len(before) :])
            sys.stdout.flush()

    if stream:
        sys.stdout.write(args.prompt)
    with placement.autocast():
        outputs = sample(
            loaded.model, [ids] * args.num, max_new=args.max_new, temperature=args.temperature,
            top_k=args.top_k, top_p=args.top_p, use_cache=not args.no_cache,
            generator=torch.Generator().manual_seed(args.seed), device=placement.device,
            on_step=on_step,
        )  # fmt: skip
    if stream:
        sys.stdout.write("\n")
    else:
        for i, out in enumerate(outputs):
            sys.stdout.write(f"--- sample {i + 1}\n{args.prompt}{decode_text(tok, out)}\n")
    return 0
