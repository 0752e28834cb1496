"""Attention: one mask convention, six score functions, one Attention module."""

from atento.attention.attention import Attention
from atento.attention.masks import causal_mask, lengths_to_mask
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
    "LocationScore",
    "ScaledDotScore",
    "causal_mask",
    "lengths_to_mask",
    "make_score",
]
