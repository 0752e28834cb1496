"""Forward + backward of one multi-head attention call in a training step: PyTorch's fused CPU
kernel against atento's explicit form, by key length (the measurement behind `EXPLICIT_KEYS`).

    python benchmarks/attention_train.py [--lengths 8 17 32 64 128 256 512] [--tokens 4096]

(B, 4 heads, L, 64) causal self-attention with B * L = --tokens (a token-budget batch). "fused"
is what a training step ran before `train.explicit_attention`: `scaled_dot_product_attention`,
in fp32 from fp32 copies of q, k, v under bf16 (`MultiHeadAttention.attend`); "explicit" is
`atento.attention.multihead._explicit_attention`. Prints one line per (length, dtype) with the
median of --repeats timed calls and the ratio. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from timing import median_ms  # noqa: E402

from atento.attention.multihead import KVCache, _explicit_attention  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[8, 17, 32, 64, 128, 256, 512])
    parser.add_argument("--tokens", type=int, default=4096, help="B * L")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    heads, dh = 4, 64
    print(f"torch {torch.__version__}, {args.threads} threads, B x L = {args.tokens}, "
          f"{heads} heads of {dh}")  # fmt: skip
    for length in args.lengths:
        batch = max(args.tokens // length, 1)
        mask = torch.ones(length, length, dtype=torch.bool).tril()[None, None]
        for dtype in (torch.float32, torch.bfloat16):
            g = torch.Generator().manual_seed(0)
            q, k, v = (torch.randn(batch, heads, length, dh, generator=g, dtype=dtype)
                       .requires_grad_() for _ in range(3))  # fmt: skip
            grad = torch.randn(batch, heads, length, dh, generator=g, dtype=dtype)

            def fused(q=q, k=k, v=v, grad=grad, dtype=dtype, mask=mask):
                out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(),
                                                     attn_mask=mask)  # fmt: skip
                out.to(dtype).backward(grad)

            def explicit(q=q, k=k, v=v, grad=grad, mask=mask):
                _explicit_attention(q, KVCache(k, v), mask, 0.0).backward(grad)

            a, b = median_ms(fused, args.repeats), median_ms(explicit, args.repeats)
            name = str(dtype).removeprefix("torch.")
            print(f"L {length:4d}  B {batch:4d}  {name:8s}  fused {a:7.2f} ms  explicit {b:7.2f} "
                  f"ms  fused / explicit {a / b:5.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
