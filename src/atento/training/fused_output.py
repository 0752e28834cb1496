"""The output layer and the label-smoothed cross-entropy in one chunked pass (issue 24).

    loss = fused_output_loss(h, weight, targets, label_smoothing=0.1, bias=None,
                             dtype=torch.bfloat16)     # h (N, D), weight (V, D): the summed loss

The plain path materialises the (N, V) logits of the N real target tokens (in bf16, then in
fp32 for the loss, then the fp32 and bf16 gradients): four blocks of 50-100 MB each whose size
changes with N at every step. Under bf16 each new size left memory behind in glibc's heap, and
a 5-minute bf16 run grew from 1.6 to 3.6 GB (benchmarks/README.md, issue 24). Here the rows go
through the output layer in chunks of `CHUNK` rows, every chunk's logits are written into the
same two fixed (CHUNK, V) buffers, and the gradient is computed in the same pass (as Liger
Kernel's fused linear cross-entropy): per row, with smoothing eps over V classes,

    loss = logsumexp(z) - (1 - eps) z_y - eps / V * sum_v z_v
    d loss / d z = softmax(z) - (1 - eps) one_hot(y) - eps / V

so d loss / d h = g W and d loss / d W = g^T h, accumulated chunk by chunk in fp32. The large
allocations of a step are then the same every step, whatever N is. `dtype` is the matrix
products' dtype (bf16 under CPU autocast); softmax and the loss are always fp32, as in
`atento.training.loss`. The weight may be a tied embedding: its gradient accumulates as usual.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from atento.kernels import PLAIN, TrainKernels, train_kernels, train_mm, weight_grad

CHUNK = 1024  # rows per chunk: 32 MB of fp32 logits at V = 8,000


def _chunk_loss(
    z: Tensor, target: Tensor, eps: float, grad: bool, out: Tensor | None = None
) -> tuple[Tensor, Tensor | None]:
    """z (r, V) fp32 logits, overwritten -> per-row losses (r,) and, with `grad`, d loss / d z:
    z itself, or written into `out` (r, V) of the products' lower dtype by the last pass
    (no separate cast pass over the chunk)."""
    V = z.size(1)
    loss = -(1.0 - eps) * z.gather(1, target.unsqueeze(1)).squeeze(1)
    if eps:
        loss = loss - (eps / V) * z.sum(1)
    m = z.amax(1, keepdim=True)
    z.sub_(m).exp_()  # in place: no second (r, V) block
    s = z.sum(1, keepdim=True)
    loss = loss + (m + s.log()).squeeze(1)
    if not grad:
        return loss, None
    z.div_(s)  # softmax
    z.scatter_add_(1, target.unsqueeze(1), z.new_full((z.size(0), 1), eps - 1.0))
    if out is not None:
        return loss, torch.sub(z, eps / V, out=out)  # cast on the way out
    return loss, z.sub_(eps / V) if eps else z


def _fused(
    h: Tensor, weight: Tensor, bias: Tensor | None, target: Tensor, eps: float,
    dtype: torch.dtype, grad: bool, chunk: int, kernels: TrainKernels = PLAIN,
) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None]:  # fmt: skip
    """The summed loss and, with `grad`, d loss / d h (N, D) in h's dtype, d loss / d weight
    (V, D) and d loss / d bias (V,) (None without a bias) in fp32. `kernels`: the kernels of
    the three products (`atento.kernels.train_kernels`; fp32 only)."""
    N, V = h.size(0), weight.size(0)
    w = weight.detach().to(dtype)
    x = h.detach().to(dtype)
    rows = min(chunk, N)
    zlow = None if dtype == torch.float32 else torch.empty(rows, V, dtype=dtype, device=h.device)
    dnn_logits = zlow is None and kernels.forward  # oneDNN writes a new block (no out=)
    z32 = None if dnn_logits else torch.empty(rows, V, dtype=torch.float32, device=h.device)
    grad_h = torch.empty(N, h.size(1), dtype=h.dtype, device=h.device) if grad else None
    grad_w = torch.zeros(V, weight.size(1), dtype=torch.float32, device=h.device) if grad else None
    with_bias = grad and bias is not None
    grad_b = torch.zeros(V, dtype=torch.float32, device=h.device) if with_bias else None
    total = torch.zeros((), dtype=torch.float32, device=h.device)
    for start in range(0, N, chunk):
        xc = x[start : start + chunk]
        r = xc.size(0)
        if dnn_logits:
            z = g = None  # the last chunk's block is free before oneDNN writes the next one
            z = train_mm(xc, w, True)
        elif zlow is None:
            z = torch.mm(xc, w.t(), out=z32[:r])
        else:
            z = z32[:r].copy_(torch.mm(xc, w.t(), out=zlow[:r]))
        if bias is not None:
            z.add_(bias.float())
        out = None if zlow is None else zlow[:r]
        loss, g = _chunk_loss(z, target[start : start + chunk], eps, grad, out)
        total += loss.sum()
        if g is None:
            continue
        if grad_b is not None:  # from the fp32 gradient (z, before or without the eps / V)
            grad_b += z.sum(0) - r * eps / V if out is not None else g.sum(0)
        grad_h[start : start + r] = train_mm(g, w.t(), kernels.dgrad)  # g W
        grad_w += weight_grad(g, xc, kernels.wgrad, contiguous=False).float()
    return total, grad_h, grad_w, grad_b


class _FusedOutputLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, weight, bias, target, eps, dtype, chunk, kernels):  # noqa: D102
        need = ctx.needs_input_grad
        with torch.autocast(h.device.type, enabled=False):
            grads = _fused(h, weight, bias, target, eps, dtype, any(need[:3]), chunk, kernels)
        total, grad_h, grad_w, grad_b = grads
        ctx.save_for_backward(grad_h, grad_w, grad_b)
        ctx.weight_dtype = weight.dtype
        ctx.bias_dtype = None if bias is None else bias.dtype
        return total

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        grad_h, grad_w, grad_b = ctx.saved_tensors
        need = ctx.needs_input_grad
        gh = grad_h.mul_(grad.to(grad_h.dtype)) if need[0] else None
        gw = grad_w.mul_(grad).to(ctx.weight_dtype) if need[1] else None
        gb = grad_b.mul_(grad).to(ctx.bias_dtype) if need[2] else None
        return gh, gw, gb, None, None, None, None, None


def fused_output_loss(
    h: Tensor, weight: Tensor, targets: Tensor, *, label_smoothing: float = 0.0,
    bias: Tensor | None = None, dtype: torch.dtype | None = None, chunk: int = CHUNK,
) -> Tensor:  # fmt: skip
    """Summed label-smoothed cross-entropy of the logits `h @ weight.T (+ bias)` without the
    (N, V) logits: h (N, D), weight (V, D), targets (N,), bias (V,) (a trained parameter, as
    the RNN's, or a fixed buffer, as Marian's). `dtype`: the matrix products' dtype (None: h's).
    Gradients flow to h, weight and a bias that requires them."""
    dtype = h.dtype if dtype is None else dtype
    if h.dim() != 2 or targets.shape != h.shape[:1]:
        raise ValueError(f"h must be (N, D) and targets (N,), got {tuple(h.shape)} and "
                         f"{tuple(targets.shape)}")  # fmt: skip
    kernels = train_kernels(h[:chunk], weight) if dtype == torch.float32 else PLAIN
    return _FusedOutputLoss.apply(
        h, weight, bias, targets, float(label_smoothing), dtype, chunk, kernels
    )


@dataclass
class OutputRows:
    """What a task's `forward` returns on the fused path: the output layer's inputs (N, D), its
    weight and bias, and the dtype of its matrix products (the forward's autocast)."""

    hidden: Tensor
    weight: Tensor
    bias: Tensor | None
    dtype: torch.dtype

    def loss(self, targets: Tensor, label_smoothing: float) -> Tensor:
        """The summed label-smoothed cross-entropy against targets (N,)."""
        return fused_output_loss(self.hidden, self.weight, targets, bias=self.bias,
                                 label_smoothing=label_smoothing, dtype=self.dtype)  # fmt: skip


def fused_dtype(setting: bool | None, model: nn.Module, device_type: str) -> torch.dtype | None:
    """The matrix products' dtype when `train.fused_output` (`setting`) applies to `model` (one
    with `output_layer()`, or a DDP wrapper of one) inside the current autocast, else None.
    None (auto): on under bf16 / fp16 autocast, and in fp32 on a CPU (measured there: faster
    and ~280 MB lower peak; fp32 elsewhere, unmeasured, keeps the plain path)."""
    inner = getattr(model, "module", model)
    if setting is False or not hasattr(inner, "output_layer"):
        return None
    low = torch.is_autocast_enabled(device_type)
    if setting is None and not low and device_type != "cpu":
        return None
    return torch.get_autocast_dtype(device_type) if low else torch.float32
