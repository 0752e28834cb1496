"""Transformer building blocks: positional encodings, feed-forward, the self-attention block
and the decoder layer."""

from atento.nn.feedforward import PositionwiseFeedForward
from atento.nn.positional import LearnedPositions, SinusoidalPositions, make_positions
from atento.nn.transformer_layers import Block, DecoderLayer, LayerCache

__all__ = [
    "Block",
    "DecoderLayer",
    "LayerCache",
    "LearnedPositions",
    "PositionwiseFeedForward",
    "SinusoidalPositions",
    "make_positions",
]
