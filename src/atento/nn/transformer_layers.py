"""Transformer layers (Vaswani et al. 2017, 3.1, Fig. 1): `Block` (self-attention, then
feed-forward: the translation Transformer's encoder layer and the layer of GPT and BERT) and
`DecoderLayer` (self-attention, cross-attention over the encoder memory, feed-forward).

Each sub-layer (self-attention, cross-attention, feed-forward) is wrapped in a residual
connection with dropout and layer norm:
    post-norm (the paper):  x = LayerNorm(x + Dropout(Sublayer(x)))
    pre-norm (option):      x = x + Dropout(Sublayer(LayerNorm(x)))
(pre-norm needs a final LayerNorm after the stack; the model adds it.)
Masks are BoolTensors, True = may attend.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from atento.attention.multihead import KVCache, MultiHeadAttention
from atento.kernels import decode_linear
from atento.nn.dropout import Dropout
from atento.nn.feedforward import PositionwiseFeedForward


class Residual(nn.Module):
    """Residual + dropout + layer norm around a sub-layer, post- or pre-norm."""

    def __init__(self, *, d_model: int, dropout: float, pre_norm: bool, eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model, eps=eps)
        self.dropout = Dropout(dropout)
        self.pre_norm = pre_norm

    def inp(self, x: Tensor) -> Tensor:
        """What the sub-layer reads: LayerNorm(x) with pre-norm, else x."""
        return self.norm(x) if self.pre_norm else x

    def out(self, x: Tensor, y: Tensor) -> Tensor:
        """Combine the input x and the sub-layer output y (both (B, T, D))."""
        x = x + self.dropout(y)
        return x if self.pre_norm else self.norm(x)


@dataclass
class LayerCache:
    """One decoder layer's caches: self-attention keys/values of the steps decoded so far
    (N, H, t, Dh), one row per hypothesis, and cross-attention keys/values of the source
    (G, H, S, Dh), one row per source sentence (see `TransformerState`)."""

    self_kv: KVCache | None
    cross_kv: KVCache | None


class Block(nn.Module):
    """A Transformer block: self-attention, then the position-wise feed-forward network (the
    encoder layer of the translation Transformer; a GPT / BERT layer). `activation` names the
    feed-forward's (`nn.feedforward.ACTIVATIONS`), `norm_eps` the layer norms' epsilon."""

    def __init__(
        self, *, d_model: int, heads: int, ff_size: int, dropout: float,
        attention_dropout: float = 0.0, pre_norm: bool = False, activation: str = "relu",
        norm_eps: float = 1e-5,
    ) -> None:  # fmt: skip
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model=d_model, heads=heads, dropout=attention_dropout)
        self.ff = PositionwiseFeedForward(d_model=d_model, ff_size=ff_size, dropout=dropout,
                                          activation=activation)  # fmt: skip
        res = dict(d_model=d_model, dropout=dropout, pre_norm=pre_norm, eps=norm_eps)
        self.res_attn = Residual(**res)
        self.res_ff = Residual(**res)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x (B, S, D), mask (B, 1, S) True = real source token -> (B, S, D)."""
        return self.attend(x, mask)[0]

    def attend(
        self, x: Tensor, mask: Tensor | None, *, cache: KVCache | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None, KVCache]:  # fmt: skip
        """`forward` with what decoder-only models need too: mask (B|1, T, S_total) (causal
        for a language model), the keys/values of earlier positions in `cache` (x then holds
        only the new positions), and the self-attention weights (B, H, T, S_total) when asked.
        Returns (B, T, D), the weights or None, and the cache including x's positions."""
        y, weights, kv = self.self_attn(
            self.res_attn.inp(x), mask=mask, cache=cache, need_weights=need_weights
        )
        x = self.res_attn.out(x, y)
        return self.res_ff.out(x, self.ff(self.res_ff.inp(x))), weights, kv

    def step(self, x: Tensor, cache: KVCache, mask: Tensor | None = None) -> tuple[Tensor, KVCache]:
        """`attend` for one new position per row at inference (a KV-cached decoding step):
        x (B, D), mask (B, S + 1) or None -> (B, D) and the cache including x's position. The
        same parameters in the fewest operations (no dropout, no module calls: at batch 1 a
        step's cost is per-operation overhead); pre- or post-norm, the block's activation."""
        w1, w2 = self.ff.w1, self.ff.w2
        if self.res_attn.pre_norm:
            y, kv = self.self_attn.step(_layer_norm(self.res_attn.norm, x), cache, mask)
            x = x + y
            h = _layer_norm(self.res_ff.norm, x)
            return x + decode_linear(self.ff.act(decode_linear(h, w1.weight, w1.bias)), w2.weight,
                                w2.bias), kv  # fmt: skip
        y, kv = self.self_attn.step(x, cache, mask)
        x = _layer_norm(self.res_attn.norm, x + y)
        y = decode_linear(self.ff.act(decode_linear(x, w1.weight, w1.bias)), w2.weight, w2.bias)
        return _layer_norm(self.res_ff.norm, x + y), kv


def _layer_norm(norm: nn.LayerNorm, x: Tensor) -> Tensor:
    """`norm(x)` without the module call."""
    return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


class DecoderLayer(nn.Module):
    """Causal self-attention, cross-attention over the encoder memory, feed-forward
    (`activation` and `norm_eps` as for `Block`)."""

    def __init__(
        self, *, d_model: int, heads: int, ff_size: int, dropout: float,
        attention_dropout: float = 0.0, pre_norm: bool = False, activation: str = "relu",
        norm_eps: float = 1e-5,
    ) -> None:  # fmt: skip
        super().__init__()
        attn = dict(d_model=d_model, heads=heads, dropout=attention_dropout)
        self.self_attn = MultiHeadAttention(**attn)
        self.cross_attn = MultiHeadAttention(**attn)
        self.ff = PositionwiseFeedForward(d_model=d_model, ff_size=ff_size, dropout=dropout,
                                          activation=activation)  # fmt: skip
        res = dict(d_model=d_model, dropout=dropout, pre_norm=pre_norm, eps=norm_eps)
        self.res_self = Residual(**res)
        self.res_cross = Residual(**res)
        self.res_ff = Residual(**res)

    def forward(
        self, x: Tensor, memory: Tensor, *, self_mask: Tensor | None, memory_mask: Tensor,
        cache: LayerCache | None = None, need_weights: bool = False, group: int = 1,
    ) -> tuple[Tensor, Tensor | None, LayerCache]:  # fmt: skip
        """x (B, T, D) target states, memory (B, S, D).

        self_mask (1|B, T, T_total) causal mask (None when T = 1 with a cache: a new step may see
        every cached step); memory_mask (B, 1, S). With `cache`, x holds only the new step(s) and
        their keys/values are appended to the cached ones; cross keys/values are reused.
        `group` > 1 (T = 1): memory, memory_mask and the cross cache have B / group rows, each
        shared by `group` consecutive rows of x, whose queries then attend to it in one call.
        Returns (B, T, D), the cross-attention weights (B, H, T, S) or None, the new cache.
        """
        cache = cache or LayerCache(None, None)
        y, _, self_kv = self.self_attn(self.res_self.inp(x), mask=self_mask, cache=cache.self_kv)
        x = self.res_self.out(x, y)
        query = self.res_cross.inp(x)
        if group > 1:  # (B, 1, D) -> (B / group, group, D): a sentence's beams as query positions
            query = query.reshape(-1, group, query.size(-1))
        y, weights, cross_kv = self.cross_attn(
            query, memory, mask=memory_mask, cache=cache.cross_kv, need_weights=need_weights
        )
        if group > 1:
            y = y.reshape(x.shape)
            if weights is not None:  # (B / group, H, group, S) -> (B, H, 1, S)
                weights = weights.transpose(1, 2).reshape(x.size(0), -1, 1, weights.size(-1))
        x = self.res_cross.out(x, y)
        x = self.res_ff.out(x, self.ff(self.res_ff.inp(x)))
        return x, weights, LayerCache(self_kv, cross_kv)
