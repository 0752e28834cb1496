"""The dropout mask on a CPU: a comparison into a bool tensor and its conversion to the compute
dtype (atento before 2026-12-06, session 6) against the comparison written into the compute
dtype directly (`atento.nn.dropout.keep_mask(shape, p, dtype)`), and the whole forward +
backward of `atento.nn.dropout.dropout` both ways.

    python benchmarks/dropout_mask.py [--sizes 1000000 4000000] [--repeats 40]

Sizes are elements: 1M is a (B, T, 256) residual of a 4,096-token batch, 4M its feed-forward
hidden layer (B, T, 1024). The random draws (`random_`) are the same in both and timed apart.
Prints one line per (size, dtype) with medians in ms. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from timing import median_ms  # noqa: E402

from atento.nn.dropout import dropout, keep_mask, keep_probability  # noqa: E402


def _bool_path(x: torch.Tensor, p: float) -> torch.Tensor:
    """The former form: a bool mask converted to x's dtype, then the products."""
    keep, scale = keep_mask(x.shape, p), 1.0 / keep_probability(p)
    if x.dtype == torch.float32:
        return x * keep.to(x.dtype).mul_(scale)
    return (x * keep.to(x.dtype)) * scale


def _train(fn, x: torch.Tensor, p: float):
    def step() -> None:
        leaf = x.detach().requires_grad_()
        fn(leaf, p).sum().backward()

    return step


def _row(n: int, dtype: torch.dtype, p: float, repeats: int) -> str:
    """One (size, dtype) line of the table."""
    words = torch.empty((n + 3) // 4, dtype=torch.int64)
    draws = median_ms(lambda: words.random_(-(2**63), None), repeats)
    lanes = words.view(torch.int16)[:n]
    threshold = round(p * 65536) - 32768
    compare_bool = median_ms(lambda: lanes >= threshold, repeats)
    flags = lanes >= threshold
    convert = median_ms(lambda: flags.to(dtype), repeats)
    direct = median_ms(  # a fresh tensor each call, as in `keep_mask`
        lambda: torch.ge(lanes, threshold, out=torch.empty(n, dtype=dtype)), repeats
    )
    x = torch.randn(n).to(dtype)
    before = median_ms(_train(_bool_path, x, p), repeats)
    after = median_ms(_train(dropout, x, p), repeats)
    name = str(dtype).removeprefix("torch.")
    return (
        f"{n:>9,} {name:>8}: draws {draws:.2f}; mask: compare to bool {compare_bool:.2f} + "
        f"convert {convert:.2f} vs compare into {name} {direct:.2f}; dropout fwd+bwd "
        f"{before:.2f} -> {after:.2f} ({before / after:.2f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 4_000_000])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--p", type=float, default=0.1)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, p = {args.p}")
    for n in args.sizes:
        for dtype in (torch.float32, torch.bfloat16):
            print(_row(n, dtype, args.p, args.repeats))


if __name__ == "__main__":
    main()
