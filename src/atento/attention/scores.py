"""The six alignment score functions of the lecture, one small class each.

Every score maps decoder queries (B, T, Dq) and encoder keys to energies (B, T, S); `Attention`
(attention.py) turns energies into weights and a context vector. A score may precompute a key
projection once per source with `prepare_keys(memory)`; the caller keeps the result in its
decoder state, so nothing per-call is stored on the module.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from atento.kernels import Linear


class AttentionScore(nn.Module):
    """Base class: energies e[b, t, s] = score(query[b, t], key[b, s])."""

    def prepare_keys(self, memory: Tensor) -> Tensor:
        """(B, S, Dk) memory -> keys in whatever form `forward` wants (default: unchanged)."""
        return memory

    def forward(self, query: Tensor, keys: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class DotScore(AttentionScore):
    """Luong et al. 2015 `dot`: e = s_t^T h_s (query and key widths must match)."""

    def forward(self, query: Tensor, keys: Tensor) -> Tensor:
        return query @ keys.transpose(1, 2)  # (B, T, S)


class ScaledDotScore(AttentionScore):
    """Vaswani et al. 2017: e = s_t^T h_s / sqrt(n), n the key width."""

    def forward(self, query: Tensor, keys: Tensor) -> Tensor:
        return (query @ keys.transpose(1, 2)) / math.sqrt(keys.size(-1))


class GeneralScore(AttentionScore):
    """Luong et al. 2015 `general` (bilinear): e = s_t^T W_a h_s. With W_a = I this is `dot`."""

    def __init__(self, *, query_size: int, key_size: int) -> None:
        super().__init__()
        self.weight = Linear(key_size, query_size, bias=False)

    def prepare_keys(self, memory: Tensor) -> Tensor:
        return self.weight(memory)  # (B, S, Dq): W_a h_s, once per source

    def forward(self, query: Tensor, keys: Tensor) -> Tensor:
        return query @ keys.transpose(1, 2)


class AdditiveScore(AttentionScore):
    """Bahdanau et al. 2015 (MLP / concat): e = v_a^T tanh(W_a s_t + U_a h_s)."""

    def __init__(self, *, query_size: int, key_size: int, hidden_size: int) -> None:
        super().__init__()
        self.query_proj = Linear(query_size, hidden_size, bias=False)
        self.key_proj = Linear(key_size, hidden_size, bias=True)
        self.v = Linear(hidden_size, 1, bias=False)

    def prepare_keys(self, memory: Tensor) -> Tensor:
        return self.key_proj(memory)  # (B, S, A): U_a h_s, once per source

    def forward(self, query: Tensor, keys: Tensor) -> Tensor:
        q = self.query_proj(query)  # (B, T, A)
        # tanh in place on the sum (autograd keeps tanh's output, not the sum's): one
        # (B, T, S, A) block fewer, identical values and gradients
        hidden = (q.unsqueeze(2) + keys.unsqueeze(1)).tanh_()  # (B, T, S, A)
        return self.v(hidden).squeeze(-1)  # (B, T, S)


class CosineScore(AttentionScore):
    """Content-based addressing (Graves et al. 2014): e = beta_t * cos(s_t, h_s).

    The key strength beta_t >= 1 comes from the query (beta = 1 + softplus(w^T s_t + b)), as the
    Neural Turing Machine's controller emits it; it sharpens the otherwise flat cosine weights.
    """

    def __init__(self, *, query_size: int) -> None:
        super().__init__()
        self.strength = Linear(query_size, 1)

    def prepare_keys(self, memory: Tensor) -> Tensor:
        return F.normalize(memory, dim=-1)

    def forward(self, query: Tensor, keys: Tensor) -> Tensor:
        cosine = F.normalize(query, dim=-1) @ keys.transpose(1, 2)  # (B, T, S)
        beta = 1.0 + F.softplus(self.strength(query))  # (B, T, 1)
        return beta * cosine


class LocationScore(AttentionScore):
    """Luong et al. 2015 `location`: a_t = softmax(W_a s_t), from the query alone.

    W_a has one row per source position up to `max_src_len`; positions beyond that window get
    energy -inf (weight 0). Keys are ignored except for their length.
    """

    def __init__(self, *, query_size: int, max_src_len: int) -> None:
        super().__init__()
        self.max_src_len = max_src_len
        self.weight = Linear(query_size, max_src_len)

    def forward(self, query: Tensor, keys: Tensor) -> Tensor:
        src_len = keys.size(1)
        energies = self.weight(query)  # (B, T, max_src_len)
        if src_len <= self.max_src_len:
            return energies[..., :src_len]
        pad = energies.new_full((*energies.shape[:2], src_len - self.max_src_len), float("-inf"))
        return torch.cat([energies, pad], dim=-1)


def make_score(
    name: str, *, query_size: int, key_size: int, max_src_len: int = 0
) -> AttentionScore:
    """The one place a config name becomes a score class."""
    if name in ("dot", "scaled_dot", "cosine") and query_size != key_size:
        raise ValueError(f"{name} attention needs query and key widths to match")
    builders = {
        "dot": lambda: DotScore(),
        "scaled_dot": lambda: ScaledDotScore(),
        "general": lambda: GeneralScore(query_size=query_size, key_size=key_size),
        "additive": lambda: AdditiveScore(
            query_size=query_size, key_size=key_size, hidden_size=query_size
        ),
        "cosine": lambda: CosineScore(query_size=query_size),
        "location": lambda: LocationScore(query_size=query_size, max_src_len=max_src_len),
    }
    if name not in builders:
        raise ValueError(f"unknown attention score {name!r}")
    return builders[name]()
