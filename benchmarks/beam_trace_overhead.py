"""Beam search with the trace switched off vs the beam search before the trace existed.

    git show 8ef5f4a:src/atento/search/beam.py > beam_old.py
    python benchmarks/beam_trace_overhead.py runs/serve_t beam_old.py \
        --src ../shared/data/multi30k/val.fr.gz --sentences 48 --repeats 5

Decodes the same sentences (beam 5, batches of 16) with both versions, interleaved, and prints
whether the outputs are identical and the median time ratio new / old.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import statistics
import sys
import time

import atento
import atento.inference as inference


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("old_beam", help="a copy of the older src/atento/search/beam.py")
    p.add_argument("--src", required=True)
    p.add_argument("--sentences", type=int, default=48)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    spec = importlib.util.spec_from_file_location("beam_old", args.old_beam)
    old = importlib.util.module_from_spec(spec)
    sys.modules["beam_old"] = old
    spec.loader.exec_module(old)
    versions = {
        "old": lambda *a, trace=None, **k: old.beam_search(*a, **k),
        "new": inference.beam_search,
    }
    opener = gzip.open if args.src.endswith(".gz") else open
    with opener(args.src, "rt", encoding="utf-8") as f:
        src = [line.strip() for line in f][: args.sentences]
    t = atento.load(args.run).translator_for(beam=5).with_search(batch_size=16, workers=1)
    times: dict[str, list[float]] = {k: [] for k in versions}
    outputs = {}
    for _ in range(args.repeats):
        for name, fn in versions.items():
            inference.beam_search = fn
            t0 = time.perf_counter()
            out = t.translate(src)
            times[name].append(time.perf_counter() - t0)
            outputs[name] = [[(h.tokens, h.score) for h in hs] for hs in out]
    ratio = statistics.median(times["new"]) / statistics.median(times["old"])
    print(f"identical outputs: {outputs['old'] == outputs['new']}")
    print({k: [round(x, 3) for x in v] for k, v in times.items()})
    print(f"median time new / old: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
