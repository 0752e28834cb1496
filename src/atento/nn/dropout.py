"""Inverted dropout with a cheap random mask on CPU.

On CPU, `nn.Dropout` draws one random number per element (`bernoulli_`), and the generator is
serial: in the Transformer config that was 22 % of a training step. Here one 64-bit draw
serves four elements: its four 16-bit lanes are compared with a threshold t, so an element is
kept with probability q = (32768 - t) / 65536, the multiple of 1/65536 closest to 1 - p
(|q - (1 - p)| <= 2^-17), and kept elements are scaled by exactly 1/q, so E[dropout(x)] = x.
On other devices (CUDA's fused kernels are already fast) this is `F.dropout`, and so it is in a
compiled forward (`runtime.compile`): `random_` would split the graph at every dropout, and
inductor draws `F.dropout`'s mask in the fused kernel itself (its own generator: a compiled run's
masks differ from an eager run's).

The mask is written by the comparison itself in the tensor's dtype (`torch.ge(..., out=)`):
on 4M elements (2-core AMD EPYC, `benchmarks/dropout_mask.py`) a comparison into a bool tensor
and its conversion took 0.92 + 2.02 ms against 0.34 ms for the comparison into bf16 (fp32:
1.50 + 1.73 against 0.89), and a bool mask as an operand of the product is converted anyway.
The 0/1 values are the same, so the outputs are identical.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_LANES = 65536  # values of one 16-bit lane


def keep_probability(p: float) -> float:
    """The exact keep probability q of `dropout(x, p)` on CPU (1 - p rounded to 1/65536)."""
    return (_LANES - round(p * _LANES)) / _LANES


def keep_mask(
    shape: torch.Size | tuple[int, ...], p: float, dtype: torch.dtype = torch.bool
) -> Tensor:
    """A tensor of `shape` and `dtype`, 1 (True) with probability `keep_probability(p)` per
    element and 0 (False) otherwise. A float dtype is written by the comparison directly."""
    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(2**63), None)  # all 64 bits
    threshold = round(p * _LANES) - _LANES // 2  # int16 lanes are uniform on -32768..32767
    mask = torch.empty(n, dtype=dtype)
    return torch.ge(words.view(torch.int16)[:n], threshold, out=mask).view(shape)


def _scaled_mask(x: Tensor, p: float) -> tuple[Tensor, float, bool]:
    """The CPU mask of `x`'s shape and dtype, its scale 1/q, and whether the scale is folded
    into the mask (fp32/fp64: a float mask holding 0 or 1/q, whose product and backward,
    grad * mask, are the fastest elementwise form; torch.where with a scalar is several times
    slower). bf16/fp16 cannot hold 1/q exactly: their mask stays 0/1 and the scale is a
    separate scalar product (computed in fp32)."""
    keep, scale = keep_mask(x.shape, p, x.dtype), 1.0 / keep_probability(p)
    folded = x.dtype in (torch.float32, torch.float64)
    if folded:
        keep.mul_(scale)
    return keep, scale, folded


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/q (see the module doc)."""
    if not training or p == 0.0:
        return x
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    if x.device.type != "cpu" or p == 1.0 or torch.compiler.is_compiling():
        return F.dropout(x, p, training=True)
    keep, scale, folded = _scaled_mask(x, p)
    return x * keep if folded else (x * keep) * scale


class _ReluDropout(torch.autograd.Function):
    """h = dropout(relu(a)) saving h alone: relu's gradient and the mask are both `h > 0`
    (an element is positive only where a > 0 and it was kept), so backward is
    threshold_backward(grad, h, 0) * (1/q). The next layer saves h anyway (a linear map's
    input), so the step keeps one tensor of the hidden layer's size instead of three (relu's
    output, the mask, the dropped output). Values and gradients are bit-identical to
    `dropout(F.relu(a), p)`: the same mask, the same products in the same dtype."""

    @staticmethod
    def forward(ctx, a: Tensor, keep: Tensor, scale: float, folded: bool) -> Tensor:
        h = torch.relu(a).mul_(keep)
        if not folded:
            h.mul_(scale)  # as dropout's (x * keep) * scale for bf16/fp16
        ctx.save_for_backward(h)
        ctx.scale, ctx.folded = scale, folded
        return h

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None, None]:
        (h,) = ctx.saved_tensors
        if ctx.folded:  # dropout's backward was grad * (keep * scale): the same rounding
            return torch.ops.aten.threshold_backward(grad, h, 0).mul_(ctx.scale), None, None, None
        return torch.ops.aten.threshold_backward(grad * ctx.scale, h, 0), None, None, None


def relu_dropout(a: Tensor, p: float, training: bool = True) -> Tensor:
    """`dropout(F.relu(a), p, training)` with one saved tensor instead of three on CPU where
    autograd records the step (`_ReluDropout`); otherwise exactly that composition."""
    if (
        not training
        or p == 0.0
        or not torch.is_grad_enabled()
        or not a.requires_grad
        or a.device.type != "cpu"
        or p == 1.0
        or torch.compiler.is_compiling()
    ):
        return dropout(F.relu(a), p, training)
    if not 0.0 < p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    return _ReluDropout.apply(a, *_scaled_mask(a, p))


class Dropout(nn.Module):
    """Drop-in for `nn.Dropout(p)` with the cheap CPU mask."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
