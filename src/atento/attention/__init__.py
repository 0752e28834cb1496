"""Attention: one mask convention, six score functions, one Attention module."""

from atento.attention.attention import Attention, masked_softmax
from atento.attention.masks import causal_mask
from atento.attention.multihead import KVCache, MultiHeadAttention
from atento.attention.scores import (
    AdditiveScore,
    AttentionScore,
    CosineScore,
    DotScore,
    GeneralScore,
    LocationScore,
    ScaledDotScore,
    make_score,
)

__all__ = [
    "AdditiveScore",
    "Attention",
    "AttentionScore",
    "CosineScore",
    "DotScore",
    "GeneralScore",
    "KVCache",
    "LocationScore",
    "MultiHeadAttention",
    "ScaledDotScore",
    "causal_mask",
    "make_score",
    "masked_softmax",
]
