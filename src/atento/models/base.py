"""What every encoder hands its decoder: shared by the RNN and Transformer models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor


@dataclass
class EncoderOutput:
    """memory (B, S, D) annotations; memory_mask (B, S) True = real token; final state.

    `final` is the RNN encoder's final state (h or (h, c)); None for encoders without one
    (the Transformer's decoder starts from the memory alone).
    """

    memory: Tensor
    memory_mask: Tensor
    final: Any = None
