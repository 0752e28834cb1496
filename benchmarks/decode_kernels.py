"""The matrix products of a decoding step, kernel against kernel: which one pays on this CPU.

    python benchmarks/decode_kernels.py [--threads 2] [--rounds 7] [--quick]

For the shapes that dominate the decoding benchmarks (rows x width -> outputs): the output
layer of beam-5 Marian (160 x 512 -> 58,101), of GPT-2 at batch 1 and 8 (1 | 8 x 768 ->
50,257), and one layer product of each (160 x 512 -> 2,048, 1 | 8 x 768 -> 3,072), it times,
interleaved round by round (the best of `--rounds`), the ways PyTorch 2.13 offers to compute
x W^T with fixed weights:

- `fp32`: `F.linear` (MKL's sgemm); `fp32_transposed`: x @ W^T with W^T stored contiguous
  (D, V) (transformers' GPT-2 `Conv1D` layout); `fp32_mkl_packed`: MKL's packed sgemm
  (`torch.ops.mkl._mkl_linear` on `_mkl_reorder_linear_weight`, what inductor's freezing uses);
  `fp32_onednn_packed`: oneDNN with weights reordered once (`torch.ops.mkldnn._linear_pointwise`);
- `bf16`: `F.linear` on bf16 weights cast once (what autocast does with its cache of
  parameter casts); `bf16_onednn_packed`: the same, reordered once; `bf16_autocast_uncached`:
  autocast over a weight that is a plain tensor (cast again at every call: the cost of
  losing autocast's cache);

and prints one JSON line per shape: milliseconds (best round), GFLOP/s and each variant's
speed relative to `fp32`. `max_abs_diff` against `fp32` says which variants give the same
numbers (0: bit-identical). Machine-dependent by design: run it on the CPU in question,
alone. `--quick` is a smoke size.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

SHAPES = {
    "marian_output": (160, 512, 58101),
    "marian_ffn": (160, 512, 2048),
    "gpt2_output_b1": (1, 768, 50257),
    "gpt2_output_b8": (8, 768, 50257),
    "gpt2_ffn_b1": (1, 768, 3072),
    "gpt2_ffn_b8": (8, 768, 3072),
}


def variants(x: torch.Tensor, w: torch.Tensor) -> dict:
    """name -> a function of no arguments computing x W^T (weights prepared here, once)."""
    m = x.size(0)
    xb, wb = x.bfloat16(), w.bfloat16()
    wt = w.t().contiguous()  # (D, V): the other layout (transformers' GPT-2 Conv1D keeps it)
    out = {"fp32": lambda: F.linear(x, w), "bf16": lambda: F.linear(xb, wb),
           "fp32_transposed": lambda: x @ wt}  # fmt: skip
    if torch.backends.mkl.is_available():
        packed = torch.ops.mkl._mkl_reorder_linear_weight(w, m)
        out["fp32_mkl_packed"] = lambda: torch.ops.mkl._mkl_linear(x, packed, w, None, m)
    if torch.backends.mkldnn.is_available():
        pf = torch.ops.mkldnn._reorder_linear_weight(w, m)
        pb = torch.ops.mkldnn._reorder_linear_weight(wb, m)
        pointwise = torch.ops.mkldnn._linear_pointwise
        out["fp32_onednn_packed"] = lambda: pointwise(x, pf, None, "none", [], "")
        out["bf16_onednn_packed"] = lambda: pointwise(xb, pb, None, "none", [], "")

    def uncached() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return F.linear(x, w)  # w is a plain tensor: cast at every call

    out["bf16_autocast_uncached"] = uncached
    return out


def time_shape(m: int, d: int, v: int, rounds: int) -> dict:
    torch.manual_seed(0)
    x, w = torch.randn(m, d), torch.randn(v, d) / d**0.5
    fns = variants(x, w)
    ref = fns["fp32"]()
    diff = {k: float((fn().float() - ref).abs().max()) for k, fn in fns.items()}
    best = dict.fromkeys(fns, float("inf"))
    calls = max(1, int(2e9 / (2 * m * d * v)))  # ~2 GFLOP a round: small shapes repeat
    for _ in range(rounds):
        for name, fn in fns.items():  # interleaved: a load change hits every variant
            tick = time.perf_counter()
            for _ in range(calls):
                fn()
            best[name] = min(best[name], (time.perf_counter() - tick) / calls)
    return {
        "shape": [m, d, v],
        "ms": {k: round(t * 1e3, 3) for k, t in best.items()},
        "gflop_s": {k: round(2 * m * d * v / t / 1e9, 1) for k, t in best.items()},
        "speed_vs_fp32": {k: round(best["fp32"] / t, 2) for k, t in best.items()},
        "max_abs_diff": {k: float(f"{d:.3g}") for k, d in diff.items()},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=list(SHAPES))
    p.add_argument("--quick", action="store_true", help="small shapes, 2 rounds (a smoke run)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.shapes:
        m, d, v = SHAPES[name]
        if args.quick:
            d, v, args.rounds = 64, 1000, 2
        row = {"name": name, "threads": args.threads, **time_shape(m, d, v, args.rounds)}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
