"""KV-cached against uncached sampling: 256 new tokens after a 32-token prompt, batch 1, fp32.

    python benchmarks/lm_sampling.py [RUN_DIR] [--new 256] [--prompt-len 32] [--repeats 3]

With a run directory (task lm, a context of at least prompt + new tokens) its model is used;
without one, a freshly initialised model of --layers x --width (default 4 x 128:
configs/shakespeare_char.yaml's size; 6 x 256 is configs/shakespeare_char_long.yaml's) with a
context of 512 (the speed does not depend on the weights). Both modes draw from the same seed; the
script asserts that they produce identical tokens and prints one JSON line with the median
times and their ratio. A third mode, "cached_general", runs the cached loop with the general
`hidden()` pass per token instead of the lean `step()` (what sampling did before it had one):
the lean step's own gain, side by side.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from atento.models.lm import TextTransformer  # noqa: E402
from atento.search.sampling import sample  # noqa: E402


def general_step(model):
    """`model.step` done by the general pass `model.hidden` (one new token per row)."""

    def step(ids, cache, *, pad_mask=None, positions=None):
        pos = None if positions is None else positions[:, None]
        h, _, cache = model.hidden(ids[:, None], pad_mask=pad_mask, cache=cache, positions=pos)
        return h[:, 0], cache

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", nargs="?")
    p.add_argument("--new", type=int, default=256)
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--layers", type=int, default=4, help="fresh model: layers (width 32 each head)")
    p.add_argument("--width", type=int, default=128, help="fresh model: d_model")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.run_dir:
        from atento.rundir import load_run

        model = load_run(args.run_dir).model
    else:
        torch.manual_seed(0)
        model = TextTransformer(vocab_size=69, d_model=args.width, heads=args.width // 32,
                                layers=args.layers, ff_size=4 * args.width,
                                context=512).eval()  # fmt: skip
    limit = model.length_limit()
    assert limit is None or limit >= args.prompt_len + args.new, "context too short"
    vocab = model.embed.num_embeddings
    prompt = torch.randint(4, vocab, (args.prompt_len,), generator=torch.Generator().manual_seed(1))
    modes = ("cached", "uncached", "cached_general")
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    tokens = {}
    for _ in range(args.repeats):
        for mode in modes:
            if mode == "cached_general":  # step_hidden() replaced by the general pass
                model.step_hidden = general_step(model)
            tick = time.perf_counter()
            out = sample(model, [prompt.tolist()], max_new=args.new, temperature=1.0,
                         generator=torch.Generator().manual_seed(7),
                         use_cache=mode != "uncached")  # fmt: skip
            times[mode].append(time.perf_counter() - tick)
            tokens[mode] = out
            model.__dict__.pop("step_hidden", None)
    assert tokens["cached"] == tokens["uncached"], "cached and uncached tokens differ"
    assert tokens["cached"] == tokens["cached_general"], "the two cached loops differ"
    med = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({
        "model": args.run_dir or f"fresh {args.layers}x{args.width}, context 512",
        "prompt": args.prompt_len,
        "new_tokens": args.new, "batch": 1, "precision": "fp32", "threads": args.threads,
        "seconds_cached": round(med["cached"], 3), "seconds_uncached": round(med["uncached"], 3),
        "speedup": round(med["uncached"] / med["cached"], 2), "identical_tokens": True,
        "seconds_cached_general": round(med["cached_general"], 3),
        "lean_step_gain": round(med["cached_general"] / med["cached"], 2),
        "rounds": {k: [round(x, 3) for x in v] for k, v in times.items()},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
