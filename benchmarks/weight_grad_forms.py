"""The fp32 products of a linear layer's training step, timed on this CPU for the Transformer's
shapes: the forward x W^T and the input gradient gy W on MKL (`mm`) and on oneDNN, and the
weight gradient gy^T x in the three forms of `atento.kernels.weight_grad` ("mm", "dnn",
"dnn_t"), in GFLOP/s (the best of several calls after a warm-up, hot caches).

    python benchmarks/weight_grad_forms.py [--rows 3300] [--threads 2]

`runtime.linear_kernel=auto` makes the same comparison once per machine, shape and size class
of rows inside a training run (kernels.json); this script shows the figures behind it. Run it on
an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from atento import kernels  # noqa: E402
from atento.runtime import cpu_features  # noqa: E402

# (N, K): attention maps, the feed-forward's two maps, the output layer (tied embeddings)
SHAPES = ((256, 256), (1024, 256), (256, 1024), (8000, 256))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[3300])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shapes", nargs="+", default=[f"{n}x{k}" for n, k in SHAPES])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not kernels._available():
        sys.exit("this torch has no oneDNN linear (torch.ops.mkldnn._linear_pointwise)")
    print(f"torch {torch.__version__}, {args.threads} threads, {kernels._cpu()}")
    print(f"cpu features: {cpu_features()}")
    gen = torch.Generator().manual_seed(0)
    P = functools.partial
    for rows in args.rows:
        for shape in args.shapes:
            n, k = map(int, shape.split("x"))
            w = torch.randn(n, k, generator=gen)
            x, gy = torch.randn(rows, k, generator=gen), torch.randn(rows, n, generator=gen)
            timed = {
                "forward mm": P(kernels.train_mm, x, w, False),
                "forward onednn": P(kernels.train_mm, x, w, True),
                "dgrad mm": P(kernels.train_mm, gy, w.t(), False),
                "dgrad onednn": P(kernels.train_mm, gy, w.t(), True),
                **{f"wgrad {f}": P(kernels.weight_grad, gy, x, f) for f in kernels.WGRAD_FORMS},
            }
            gflop = 2 * rows * n * k / 1e9
            cells = []
            for name, fn in timed.items():
                seconds = kernels._best_time(fn)
                cells.append(f"{name} {seconds * 1e3:.2f} ms ({gflop / seconds:.0f} GFLOP/s)")
            print(f"{rows} x {n}x{k}: " + " | ".join(cells))


if __name__ == "__main__":
    main()
