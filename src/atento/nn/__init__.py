"""Transformer building blocks: positional encodings, feed-forward, encoder and decoder layers."""

from atento.nn.feedforward import PositionwiseFeedForward
from atento.nn.positional import LearnedPositions, SinusoidalPositions, make_positions
from atento.nn.transformer_layers import DecoderLayer, EncoderLayer, LayerCache

__all__ = [
    "DecoderLayer",
    "EncoderLayer",
    "LayerCache",
    "LearnedPositions",
    "PositionwiseFeedForward",
    "SinusoidalPositions",
    "make_positions",
]
