"""A sentence classifier on a bidirectional RNN's annotations (`task: classify`,
`model.arch: birnn`), and the same encoder pretrained as a masked language model (`task: mlm`).

    h_1 .. h_n = BiGRU/BiLSTM(E x_1 .. E x_n)     annotations [forward; backward], the
                                                  encoder of the translation RNN (models/rnn.py)
    pooling attention:  e_t = u^T tanh(W h_t + b),  a = softmax(e) over the real positions,
                        v = sum_t a_t h_t           (additive attention whose query is learned:
                                                  u is the "context vector" of Yang et al.
                                                  2016; a query term U q would only add to b)
    pooling mean / max: the mean / the element-wise max of the real positions' annotations
    logits = W_o Dropout(v) + b_o

The single-task BiLSTM is the classic reference for SST-2 (GLUE's baseline: 85.9 on whole
sentences, with GloVe vectors); this one starts from random embeddings and the run's own
SentencePiece pieces, or from a `task: mlm` run of `model.arch: birnn` (`model.init_from`):

    masked LM:  logits_t = W_v Dropout(h_t) + b_v   at the chosen positions t only

BERT's masking and loss (tasks/mlm.py) on the same annotations: with [MASK] at t, the forward
direction reads x_1 .. x_{t-1} and the backward one x_{t+1} .. x_n, so h_t predicts x_t from
both sides of it. `init_from` copies the encoder (embeddings and RNN) exactly; the pooling and
the head start fresh. With attention pooling, `atento attention` shows the weights a_t over the
sentence: which pieces the classifier read its label from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from atento.attention.attention import masked_softmax
from atento.config import check
from atento.errors import AtentoError
from atento.kernels import Linear
from atento.models.classifier import ClassifierOutput, masked_mean
from atento.models.pretrained import load_exactly
from atento.models.rnn import RNNEncoder
from atento.nn.dropout import Dropout

if TYPE_CHECKING:
    from atento.config import Config
    from atento.models.pretrained import Pretrained

RNN_POOLINGS = ("attention", "mean", "max")


@dataclass
class BiRNNConfig:
    """`model.arch: birnn`: a bidirectional GRU/LSTM sentence classifier (module doc)."""

    arch: str = "birnn"
    cell: str = "gru"  # gru | lstm
    emb_size: int = 128
    hidden_size: int = 256  # annotation width (each direction: half)
    layers: int = 1
    dropout: float = 0.3  # on the embeddings, between layers and before the output layer
    pooling: str = "attention"  # attention | mean | max
    attention_size: int = 128  # W's width in the attention pooling
    context: int = 128  # task: mlm: [CLS] + pieces + [SEP] cut to this (a classifier: any)
    init_from: str = ""  # a birnn run (task: mlm, or classify): its encoder is the start

    # what an init_from run must share (pretrained.check_keys): the encoder's shapes
    matching_keys = ("cell", "emb_size", "hidden_size", "layers")

    def validate(self, cfg: Config) -> None:
        if cfg.task not in ("classify", "mlm"):
            raise AtentoError(
                f"config: model.arch=birnn is for task: classify or mlm, not {cfg.task}"
            )
        check(self.cell in ("gru", "lstm"), cfg, "model.cell", "gru, lstm")
        check(self.emb_size > 0, cfg, "model.emb_size", "a positive number")
        check(self.hidden_size > 0 and self.hidden_size % 2 == 0, cfg, "model.hidden_size",
              "a positive even number: it is split over two directions")  # fmt: skip
        check(self.layers >= 1, cfg, "model.layers", "at least 1")
        check(0.0 <= self.dropout < 1.0, cfg, "model.dropout", "a value in [0, 1)")
        check(self.pooling in RNN_POOLINGS, cfg, "model.pooling", ", ".join(RNN_POOLINGS))
        check(self.attention_size > 0, cfg, "model.attention_size", "a positive number")
        check(self.context >= 3, cfg, "model.context", "at least 3 ([CLS] x [SEP])")


class RNNClassifier(nn.Module):
    """Bidirectional RNN annotations, pooled, and a linear head (module doc)."""

    causal = False
    n_layers = heads = 1  # the attention view's one layer and one head (the pooling)

    def __init__(
        self, *, vocab_size: int, num_classes: int, emb_size: int, hidden_size: int,
        layers: int, cell: str, dropout: float, pooling: str, attention_size: int = 128,
    ) -> None:  # fmt: skip
        super().__init__()
        if pooling not in RNN_POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r} (use {', '.join(RNN_POOLINGS)})")
        self.pooling = pooling
        self.encoder = RNNEncoder(vocab_size=vocab_size, emb_size=emb_size,
                                  hidden_size=hidden_size, layers=layers, cell=cell,
                                  dropout=dropout)  # fmt: skip
        self.key_proj = self.context = None
        if pooling == "attention":
            self.key_proj = Linear(hidden_size, attention_size)  # W, b
            self.context = Linear(attention_size, 1, bias=False)  # u
        self.dropout = Dropout(dropout)
        self.head = Linear(hidden_size, num_classes)

    def length_limit(self) -> int | None:
        return None

    def layer_index(self, layer: int) -> int:
        """The attention pooling is the one layer of attention (index 0)."""
        return 0

    def annotations(self, ids: Tensor, pad_mask: Tensor) -> Tensor:
        """ids (B, T), pad_mask (B, T) True = real token -> annotations (B, T, H), 0 at PAD."""
        return self.encoder(ids, pad_mask).memory

    def attention_weights(self, h: Tensor, pad_mask: Tensor) -> Tensor:
        """The attention pooling's weights (B, T) over the real positions (they sum to 1)."""
        assert self.key_proj is not None and self.context is not None
        energies = self.context(torch.tanh(self.key_proj(h))).squeeze(-1)  # (B, T)
        return masked_softmax(energies, pad_mask)

    def pool(self, h: Tensor, pad_mask: Tensor) -> Tensor:
        """Annotations (B, T, H) -> one vector per sentence (B, H)."""
        if self.pooling == "attention":
            return (self.attention_weights(h, pad_mask).unsqueeze(-1) * h).sum(1)
        if self.pooling == "mean":
            return masked_mean(h, pad_mask)
        return h.masked_fill(~pad_mask.unsqueeze(-1), float("-inf")).amax(1)

    def forward(self, ids: Tensor, pad_mask: Tensor, *, lm: bool = False) -> ClassifierOutput:
        """ids (B, T), pad_mask (B, T) -> class logits (B, C) (`lm` has no meaning here)."""
        h = self.annotations(ids, pad_mask)
        return ClassifierOutput(self.head(self.dropout(self.pool(h, pad_mask))))

    @torch.no_grad()
    def pooling_attention(self, ids: list[int]) -> Tensor:
        """The attention pooling's weights over one input, (1, 1, T): the heatmap's one row."""
        if self.key_proj is None:  # a user's request, not a layer or head out of range
            raise AtentoError(
                f"model.pooling={self.pooling} has no attention weights to show "
                "(model.pooling=attention has)"
            )
        device = self.head.weight.device
        x = torch.tensor([ids], device=device)
        mask = torch.ones_like(x, dtype=torch.bool)
        was = self.training
        self.eval()
        try:
            h = self.annotations(x, mask)
            return self.attention_weights(h, mask).float().unsqueeze(0).cpu()
        finally:
            self.train(was)


class RNNMaskedLM(nn.Module):
    """The classifier's encoder with an output layer over the vocabulary at the masked
    positions (`task: mlm`, module doc); `head` is what `init_from` leaves behind."""

    causal = False

    def __init__(
        self, *, vocab_size: int, emb_size: int, hidden_size: int, layers: int, cell: str,
        dropout: float,
    ) -> None:  # fmt: skip
        super().__init__()
        self.encoder = RNNEncoder(vocab_size=vocab_size, emb_size=emb_size,
                                  hidden_size=hidden_size, layers=layers, cell=cell,
                                  dropout=dropout)  # fmt: skip
        self.dropout = Dropout(dropout)
        self.head = Linear(hidden_size, vocab_size)

    def length_limit(self) -> int | None:
        return None

    def forward(self, ids: Tensor, pad_mask: Tensor, *, select: Tensor | None = None) -> Tensor:
        """ids (B, T), pad_mask (B, T) -> logits over the vocabulary at the `select`ed positions
        (N, V), or at every position (B, T, V)."""
        h = self.encoder(ids, pad_mask).memory
        return self.head(self.dropout(h if select is None else h[select]))

    def self_attention(self, ids: list[int], *, layer: int = -1, head: int | None = None):
        raise AtentoError(
            "a model.arch=birnn masked language model has no attention weights to show "
            "(its classifiers with model.pooling=attention have)"
        )


ENCODER = "encoder."  # the prefix of the RNN encoder in both modules


def build_birnn(
    cfg: Config, *, vocab_size: int, num_classes: int = 0, pretrained: Pretrained | None = None
) -> nn.Module:
    """The classifier of `cfg.model` (task: classify gives `num_classes`) or its masked
    language model (task: mlm); with `pretrained`, its encoder's weights copied exactly."""
    m = cfg.model
    sizes = dict(vocab_size=vocab_size, emb_size=m.emb_size, hidden_size=m.hidden_size,
                 layers=m.layers, cell=m.cell, dropout=m.dropout)  # fmt: skip
    if cfg.task == "mlm":
        model: nn.Module = RNNMaskedLM(**sizes)
    elif num_classes:
        model = RNNClassifier(num_classes=num_classes, pooling=m.pooling,
                              attention_size=m.attention_size, **sizes)  # fmt: skip
    else:
        raise AtentoError("config: model.arch=birnn is a classifier (task: classify) or a masked "
                          "language model (task: mlm)")  # fmt: skip
    if pretrained is not None:
        weights = {k[len(ENCODER) :]: v for k, v in pretrained.weights.items()
                   if k.startswith(ENCODER)}  # fmt: skip
        load_exactly(model.encoder, weights, pretrained.run)
    return model
