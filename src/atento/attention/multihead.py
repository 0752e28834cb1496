"""Multi-head scaled dot-product attention with a key/value cache (Vaswani et al. 2017, 3.2).

    MultiHead(Q, K, V) = Concat(head_1, ..., head_H) W^O,
    head_h = Attention(Q W_h^Q, K W_h^K, V W_h^V),
    Attention(q, k, v) = softmax(q k^T / sqrt(d_k)) v

One module serves self-attention (keys and values from the queries' own sequence) and
encoder-decoder (cross) attention (keys and values from the encoder memory). Masks follow the one
convention of atento: a BoolTensor, True = may attend, broadcastable to (B, T, S).

Two paths compute the same thing:
- fast: `torch.nn.functional.scaled_dot_product_attention` (fused kernels), used when no
  weights are requested;
- explicit: the energies come from the very `ScaledDotScore` the RNN decoder uses and the weights
  from the same `masked_softmax` as `Attention`, so heatmaps and analysis get (B, H, T, S) weights.

A training step on a CPU over few keys takes a third, explicit form (`train.explicit_attention`,
on every module: null = that choice, true = in every CPU training step, false = never): the two
products in the inputs' dtype (bf16 under autocast), the softmax in fp32. PyTorch 2.13's fused
CPU kernel is built for long sequences: at Multi30k's ~17 keys its forward + backward took 3x
the explicit form's time in bf16 (where it also needs fp32 copies of q, k, v) and 2-2.4x in
fp32 on two AMD EPYCs; the two meet between 128 and 256 keys in bf16 and between 64 and 256 in
fp32. Hence auto: at most `EXPLICIT_KEYS` = 128 keys under bf16 / fp16 autocast, at most
`EXPLICIT_KEYS_FP32` = 64 in fp32 (docs/design.md, "Explicit attention in training steps").

Incremental decoding keeps a `KVCache` per layer in the decoder state (never on the module):
self-attention appends one step of keys/values per call; cross-attention keys/values are projected
once per source with `project_kv(memory)` and reused at every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from atento.attention.attention import masked_softmax
from atento.attention.scores import ScaledDotScore
from atento.kernels import Linear, decode_linear, decode_linears


class _Room:
    """The buffers (N, H, capacity, Dh) that a growing self-attention cache writes into, and
    how many positions of them are taken."""

    def __init__(self, keys: Tensor, values: Tensor, used: int) -> None:
        self.keys, self.values, self.used = keys, values, used


@dataclass
class KVCache:
    """Projected keys and values of one attention layer, split into heads.

    keys, values: (N, H, S, Dh); S grows by one per decoding step for self-attention and is the
    source length for cross-attention.

    A cache that `append` made and that grows again gets spare positions after its own (half
    as many again as it holds), and later steps are written into them, so that a step costs
    its own keys and values, not a copy of the whole cache (which at batch 8 and 288 positions
    of GPT-2 small took a quarter of a step). A cache stays a value: positions once written are
    never overwritten, and an append to a cache whose spare room another append already took
    copies instead. A cache that beam search reordered (`index_select`: a compact copy) is
    appended to by one exact copy, as `torch.cat` would.
    """

    keys: Tensor
    values: Tensor
    room: _Room | None = field(default=None, repr=False, compare=False)

    @property
    def length(self) -> int:
        """S, the number of cached positions."""
        return self.keys.size(2)

    def append(self, other: KVCache) -> KVCache:
        """This cache followed by `other`'s positions (along S)."""
        s, t = self.length, other.length
        room = self.room
        if not self._fits(other):
            tracked = torch.is_grad_enabled() and (
                self.keys.requires_grad or other.keys.requires_grad
            )
            if tracked or other.keys.dtype != self.keys.dtype:  # cat: autograd, type promotion
                keys = torch.cat([self.keys, other.keys], dim=2)  # (N, H, S1 + S2, Dh)
                return KVCache(keys=keys, values=torch.cat([self.values, other.values], dim=2))
            n, h, _, dh = self.keys.shape
            # room only for a cache that grows a second time: beam search reorders its caches
            # (compact copies) before every append, and a spare half there is only cost
            capacity = s + t if room is None else s + t + max(16, (s + t) // 2)
            room = _Room(self.keys.new_empty(n, h, capacity, dh),
                         self.values.new_empty(n, h, capacity, self.values.size(3)), s)  # fmt: skip
            room.keys[:, :, :s] = self.keys
            room.values[:, :, :s] = self.values
        room.keys[:, :, s : s + t] = other.keys
        room.values[:, :, s : s + t] = other.values
        room.used = s + t
        return KVCache(room.keys[:, :, : s + t], room.values[:, :, : s + t], room)

    def _fits(self, other: KVCache) -> bool:
        """Whether `other`'s positions can be written into the spare room after this cache's:
        nobody took it yet, it is large enough, of the same dtype, and writable here (an
        inference tensor only in inference mode)."""
        room, end = self.room, self.length + other.length
        if room is None or room.used != self.length or end > room.keys.size(2):
            return False
        writable = torch.is_inference_mode_enabled() or not room.keys.is_inference()
        return other.keys.dtype == room.keys.dtype and writable

    def index_select(self, index: Tensor) -> KVCache:
        """Keep / repeat / reorder rows (N) by `index` (N',): beam expansion and pruning."""
        return self.map(lambda x: x.index_select(0, index))

    def map(self, fn) -> KVCache:
        """`fn` applied to the keys and to the values."""
        return KVCache(fn(self.keys), fn(self.values))


EXPLICIT_KEYS = 128  # bf16: explicit faster at <= 128 keys, fused from 256 on (measured)
EXPLICIT_KEYS_FP32 = 64  # fp32: the crossover lay between 64 and 256 keys on the CPUs measured


def _low_precision_cpu(x: Tensor) -> bool:
    """bf16 (or fp16) on a CPU, i.e. under autocast there: the fused attention then runs in
    fp32, the explicit form of training steps in bf16 products with an fp32 softmax. (A float64
    model keeps float64 attention.)"""
    return x.device.type == "cpu" and x.dtype in (torch.bfloat16, torch.float16)


def autocast_input(x: Tensor) -> Tensor:
    """x in the dtype that autocast gives a matrix product's input (bf16 / fp16 inside a
    low-precision autocast region of x's device, else x itself). Autocast casts an fp32
    activation at every product that reads it; a tensor read by several (the query, key and
    value maps; the encoder memory read by every decoder layer) is cast once this way. The
    products see the same values; the backward sums their input gradients in the low dtype
    (as a single product over the concatenated weights would produce them) before one cast."""
    device = x.device.type
    if x.dtype != torch.float32 or not torch.is_autocast_enabled(device):
        return x
    return x.to(torch.get_autocast_dtype(device))


class MultiHeadAttention(nn.Module):
    """H heads of width Dh = D / H, with learned Q/K/V projections and an output projection.

    `fast=True` lets the forward use `F.scaled_dot_product_attention` whenever the weights are
    not requested; `fast=False` always takes the explicit path (for tests and teaching).
    """

    def __init__(
        self, *, d_model: int, heads: int, dropout: float = 0.0, bias: bool = True,
        fast: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model={d_model} is not divisible by heads={heads}")
        self.heads = heads
        self.head_dim = d_model // heads
        self.dropout = dropout
        self.fast = fast
        self.q_proj = Linear(d_model, d_model, bias=bias)
        self.k_proj = Linear(d_model, d_model, bias=bias)
        self.v_proj = Linear(d_model, d_model, bias=bias)
        self.out_proj = Linear(d_model, d_model, bias=bias)
        self.explicit: bool | None = None  # train.explicit_attention (see `_explicit_training`)
        self.score = ScaledDotScore()  # the scaled_dot energies of the RNN decoder, reused

    def _split(self, x: Tensor) -> Tensor:
        """(N, L, D) -> (N, H, L, Dh)."""
        n, length, _ = x.shape
        return x.view(n, length, self.heads, self.head_dim).transpose(1, 2)  # (N, H, L, Dh)

    def project_kv(self, x: Tensor) -> KVCache:
        """Keys and values of x (N, S, D), split into heads: a cache of S positions. Decoding on
        a CPU under bf16 autocast keeps them in fp32, as `attend` computes there."""
        keys, values = self._split(self.k_proj(x)), self._split(self.v_proj(x))
        if _low_precision_cpu(keys) and not keys.requires_grad:
            keys, values = keys.float(), values.float()
        return KVCache(keys=keys, values=values)

    def forward(
        self, query: Tensor, memory: Tensor | None = None, *, mask: Tensor | None = None,
        cache: KVCache | None = None, need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None, KVCache]:  # fmt: skip
        """Self-attention (memory None) or cross-attention over `memory`.

        query (B, T, D); memory (B, S, D) or None; mask broadcastable to (B, T, S), True = may
        attend, or None. Self-attention: keys/values of `query` are appended to `cache` (when
        given, for incremental decoding T = 1 with no mask needed). Cross-attention: `cache`
        holds `project_kv(memory)` computed once per source; without it the memory is projected.
        Returns output (B, T, D), weights (B, H, T, S) when `need_weights` else None, and the
        cache to carry to the next step.
        """
        if memory is None:
            query = autocast_input(query)  # read by three products: cast once
            new = self.project_kv(query)
            kv = new if cache is None else cache.append(new)
        else:
            kv = cache if cache is not None else self.project_kv(autocast_input(memory))
        q = self._split(self.q_proj(query))  # (B, H, T, Dh)
        head_mask = None if mask is None else mask.unsqueeze(1)  # (B, 1, T, S)
        out, weights = self.attend(q, kv, head_mask, need_weights=need_weights)
        b, _, t, _ = out.shape
        out = out.transpose(1, 2).reshape(b, t, self.heads * self.head_dim)  # (B, T, D)
        return self.out_proj(out), weights, kv

    def step(self, x: Tensor, cache: KVCache, mask: Tensor | None = None) -> tuple[Tensor, KVCache]:
        """Self-attention of one new position per row at inference, in the fewest operations:
        x (B, D), cache (B, H, S, Dh), mask (B, S + 1) True = may attend, or None. Equals
        `forward(x[:, None], mask=mask[:, None], cache=cache)` (output (B, D), new cache): one
        query per row needs no (B, 1, D) reshapes and no transposes, and softmax(q k^T /
        sqrt(Dh)) v is written out (the KV-cached loop of `TextTransformer.step`, where the
        cost is per-operation overhead, not arithmetic)."""
        b = x.size(0)
        q, k, v = (  # (B, H, 1, Dh) views of one fused product (`kernels.decode_linears`)
            y.view(b, self.heads, 1, self.head_dim)
            for y in decode_linears(x, (self.q_proj, self.k_proj, self.v_proj))
        )
        new = KVCache(k, v)
        head_mask = None if mask is None else mask[:, None, None, :]  # (B, 1, 1, S + 1)
        if _low_precision_cpu(q):  # bf16 autocast on a CPU: attention in fp32, as `attend`
            kv = cache.append(new.map(Tensor.float))
            out = self.attend(q, kv, head_mask, need_weights=False)[0]
        else:
            kv = cache.append(new)
            energies = (q @ kv.keys.transpose(2, 3)).mul_(self.head_dim**-0.5)  # (B, H, 1, S)
            out = masked_softmax(energies, head_mask) @ kv.values  # (B, H, 1, Dh)
        return decode_linear(out.view(b, -1), self.out_proj.weight, self.out_proj.bias), kv

    def attend(
        self, q: Tensor, kv: KVCache, mask: Tensor | None, *, need_weights: bool
    ) -> tuple[Tensor, Tensor | None]:
        """softmax(q k^T / sqrt(Dh)) v per head: q (B, H, T, Dh), mask (B|1, 1, T|1, S).

        Returns (B, H, T, Dh) and the weights (B, H, T, S) or None (fast path).
        """
        p = self.dropout if self.training else 0.0
        if not need_weights and self._explicit_training(q, kv):
            return _explicit_attention(q, kv, mask, p), None
        if _low_precision_cpu(q):
            # PyTorch 2.13's fused CPU kernel in bf16: ~8x slower backwards than in fp32 when
            # training; ~740 us per decoding call against ~300 in fp32 (~165 for the explicit
            # path with one query). Under autocast, attention itself runs in fp32.
            with torch.autocast("cpu", enabled=False):
                out, weights = self._attend(q.float(), kv.map(Tensor.float), mask, p, need_weights)
            return out.to(q.dtype), weights
        return self._attend(q, kv, mask, p, need_weights)

    def _explicit_training(self, q: Tensor, kv: KVCache) -> bool:
        """Whether this call takes the explicit form: a CPU training step (gradients flow)
        outside a compiled graph (where inductor fuses attention itself), with `explicit`
        True, or None (auto) over at most `EXPLICIT_KEYS` keys under bf16 / fp16 autocast and
        at most `EXPLICIT_KEYS_FP32` in fp32."""
        if torch.compiler.is_compiling():  # first: no guard on the key length in a graph
            return False
        if self.explicit is False or q.device.type != "cpu":
            return False
        if not (q.requires_grad and torch.is_grad_enabled()):
            return False
        if self.explicit is True:
            return True
        if _low_precision_cpu(q):
            return kv.length <= EXPLICIT_KEYS
        return q.dtype == torch.float32 and kv.length <= EXPLICIT_KEYS_FP32

    def _attend(
        self, q: Tensor, kv: KVCache, mask: Tensor | None, p: float, need_weights: bool
    ) -> tuple[Tensor, Tensor | None]:
        # an incremental decoding step on a CPU: the explicit path is the faster one there
        one_query = q.size(2) == 1 and q.device.type == "cpu" and not q.requires_grad
        if self.fast and not need_weights and not one_query:
            out = F.scaled_dot_product_attention(q, kv.keys, kv.values, attn_mask=mask, dropout_p=p)
            return out, None
        b, h, t, dh = q.shape
        s = kv.length
        energies = self.score(q.reshape(b * h, t, dh), kv.keys.reshape(b * h, s, dh))  # (BH, T, S)
        weights = masked_softmax(energies.view(b, h, t, s), mask)  # (B, H, T, S)
        out = F.dropout(weights, p=p, training=self.training) @ kv.values  # (B, H, T, Dh)
        return out, weights


def _explicit_attention(q: Tensor, kv: KVCache, mask: Tensor | None, p: float) -> Tensor:
    """softmax(q k^T / sqrt(Dh)) v with both products in q's dtype and the softmax in fp32:
    q (B, H, T, Dh), mask (B|1, 1, T|1, S) True = may attend -> (B, H, T, Dh) in q's dtype."""
    # in place on the product's own output (fp32) or its fp32 copy (bf16): neither is saved
    energies = (q @ kv.keys.transpose(2, 3)).float().mul_(q.size(-1) ** -0.5)  # (B, H, T, S)
    weights = masked_softmax(energies, mask).to(kv.values.dtype)
    if p:
        weights = F.dropout(weights, p=p)
    return weights @ kv.values


def set_explicit_attention(model: nn.Module, setting: bool | None) -> None:
    """`train.explicit_attention` on every `MultiHeadAttention` in `model`: None (auto) takes the
    explicit form in CPU training steps with at most `EXPLICIT_KEYS` keys under bf16 / fp16
    autocast and `EXPLICIT_KEYS_FP32` in fp32, True in every CPU training step, False never
    (the fused kernel)."""
    for module in model.modules():
        if isinstance(module, MultiHeadAttention):
            module.explicit = setting
