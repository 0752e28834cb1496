"""Do translations change with the batch size? Decode a test set with several batch sizes and
count the sentences whose best hypothesis is identical to the one decoded alone (batch 1).

    python benchmarks/batch_invariance.py RUN_DIR \
        --src ../shared/data/multi30k/test_2016_flickr.fr.gz --batch-sizes 1,7,64 --beam 5

For every difference it reports whether the two hypotheses tie (the other batch size's output,
scored by the batch-1 search, within --tie of the batch-1 best) and the largest score change.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from atento.data.parallel import read_lines  # noqa: E402
from atento.rundir import load_run  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--src", required=True)
    p.add_argument("--batch-sizes", default="1,7,64")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--tie", type=float, default=1e-5)
    p.add_argument("--sentences", type=int, default=0, help="0 = all")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    run = load_run(args.run_dir)
    sources = read_lines(args.src)
    sources = sources[: args.sentences] if args.sentences else sources
    base = (
        run.translator()
        .with_precision(args.precision)
        .with_search(beam=args.beam, nbest=args.beam, workers=1)
    )
    sizes = [int(x) for x in args.batch_sizes.split(",")]
    out = {}
    for size in sizes:
        tick = time.perf_counter()
        out[size] = base.with_search(batch_size=size).translate(sources)
        out[f"seconds_{size}"] = round(time.perf_counter() - tick, 1)
    ref = out[sizes[0]]
    report = {"run": Path(args.run_dir).name, "sentences": len(sources), "beam": args.beam,
              "precision": base.placement.precision, "tie": args.tie}  # fmt: skip
    for size in sizes[1:]:
        same = ties = 0
        max_delta, worst = 0.0, None
        for i, (a, b) in enumerate(zip(ref, out[size], strict=True)):
            max_delta = max(max_delta, abs(a[0].score - b[0].score))
            if a[0].tokens == b[0].tokens:
                same += 1
                continue
            # b's best is in a's n-best list with a score tying a's best: a tie, not an error
            match = [h for h in a if h.tokens == b[0].tokens]
            if match and abs(match[0].score - a[0].score) <= args.tie:
                ties += 1
            elif worst is None:
                worst = {"sentence": i, "score_1": a[0].score, f"score_{size}": b[0].score}
        report[f"batch_{size}"] = {"identical": same, "ties": ties,
                                   "other": len(sources) - same - ties,
                                   "max_score_change": max_delta, "first_other": worst,
                                   "seconds": out[f"seconds_{size}"]}  # fmt: skip
    print(json.dumps(report))


if __name__ == "__main__":
    main()
