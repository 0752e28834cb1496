"""Position-wise feed-forward network (Vaswani et al. 2017, 3.3).

    FFN(x) = act(x W1 + b1) W2 + b2

`act` is ReLU in the paper (the default); GELU (Hendrycks and Gimpel 2016) is BERT's, its tanh
approximation GPT-2's, and swish (SiLU) Marian's. `ACTIVATIONS` names them for the configs
(`model.activation`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch.nn.functional as F
from torch import Tensor, nn

from atento.kernels import Linear
from atento.nn.dropout import Dropout, relu_dropout

# model.activation -> the function
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,  # exact: x Phi(x) (BERT)
    "gelu_tanh": partial(F.gelu, approximate="tanh"),  # GPT-2's "gelu_new"
    "swish": F.silu,  # x sigmoid(x) (Marian)
}


def activation_fn(name: str) -> Callable[[Tensor], Tensor]:
    """The activation function `name` (a key of ACTIVATIONS); ValueError otherwise."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r} (use {', '.join(ACTIVATIONS)})")
    return ACTIVATIONS[name]


class PositionwiseFeedForward(nn.Module):
    """Two linear maps D -> F -> D with an activation between, applied at every position.

    With ReLU, the activation and the dropout after it are one autograd step
    (`nn.dropout.relu_dropout`, bit-identical): a training step keeps one (B, T, F) tensor
    per layer where it kept three. `fuse_relu = False` (on the class or an instance) gives
    the two separate modules' path, which the tests and benchmarks compare against."""

    fuse_relu = True

    def __init__(
        self, *, d_model: int, ff_size: int, dropout: float = 0.0, activation: str = "relu"
    ) -> None:
        super().__init__()
        self.w1 = Linear(d_model, ff_size)
        self.w2 = Linear(ff_size, d_model)
        self.dropout = Dropout(dropout)
        self.activation = activation
        self.act = activation_fn(activation)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, T, D) -> (B, T, D)."""
        if self.fuse_relu and self.activation == "relu":
            return self.w2(relu_dropout(self.w1(x), self.dropout.p, self.training))
        return self.w2(self.dropout(self.act(self.w1(x))))
