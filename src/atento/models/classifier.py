"""The sentence classifier on a text Transformer (`task: classify`, `models.text`).

An input sentence is `[CLS] x_1 .. x_n [SEP]` with the tokenizer's special ids: its BOS stands
for [CLS] and its EOS for [SEP] (an imported BERT's own [CLS] and [SEP]); padding is on the
right and masked out of attention.

`SentenceClassifier` puts a linear head on one vector per sentence:

    pooling cls   h_0, the [CLS] state (BERT)
    pooling mean  the mean of the real positions' states (the default: an MLM-pretrained
                  encoder never trains h_0 for anything, while every state carries the text)
    pooling last  the state of the last real token (GPT, Radford et al. 2018: a causal model's
                  only state that has read the whole sentence)

A body with a pooler (`model.pooler`, BERT's) maps the pooled vector through tanh(W v + b)
before the head, as BertForSequenceClassification does. For a GPT the classifier also returns
next-token logits for the auxiliary LM loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from atento.kernels import Linear
from atento.models.lm import TextTransformer
from atento.nn.dropout import Dropout

POOLINGS = ("cls", "mean", "last")


def masked_mean(h: Tensor, pad_mask: Tensor) -> Tensor:
    """States (B, T, D) and pad_mask (B, T) True = real token -> the real positions' mean (B, D)."""
    m = pad_mask.unsqueeze(-1).to(h.dtype)  # (B, T, 1)
    return (h * m).sum(1) / m.sum(1).clamp_min(1.0)


@dataclass
class ClassifierOutput:
    """logits (B, C); lm_logits (N, V) at the N real positions that have a next token (row
    major), when the auxiliary language-model loss is asked for."""

    logits: Tensor
    lm_logits: Tensor | None = None


class SentenceClassifier(nn.Module):
    """A text Transformer `body` and a linear head on its pooled states (module doc)."""

    def __init__(
        self, *, body: TextTransformer, num_classes: int, pooling: str, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r} (use {', '.join(POOLINGS)})")
        self.body, self.pooling = body, pooling
        self.dropout = Dropout(dropout)
        d_model = body.embed.embedding_dim
        self.head = Linear(d_model, num_classes)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    @property
    def causal(self) -> bool:
        return self.body.causal

    def length_limit(self) -> int | None:
        return self.body.length_limit()

    def layer_index(self, layer: int) -> int:
        return self.body.layer_index(layer)

    def self_attention(self, ids: list[int], *, layer: int = -1, head: int | None = None):
        """The body's self-attention (H, T, T) over one input (`TextTransformer`'s)."""
        return self.body.self_attention(ids, layer=layer, head=head)

    def pool(self, h: Tensor, pad_mask: Tensor) -> Tensor:
        """States (B, T, D) and pad_mask (B, T) True = real token -> (B, D)."""
        if self.pooling == "cls":
            return h[:, 0]
        if self.pooling == "mean":
            return masked_mean(h, pad_mask)
        last = pad_mask.long().sum(1).clamp_min(1) - 1  # (B,) index of the last real token
        return h[torch.arange(h.size(0), device=h.device), last]

    def forward(self, ids: Tensor, pad_mask: Tensor, *, lm: bool = False) -> ClassifierOutput:
        """ids (B, T), pad_mask (B, T) True = real token -> class logits (B, C) and, with
        `lm` (causal bodies), next-token logits at the positions whose next token is real."""
        h = self.body.hidden(ids, pad_mask=pad_mask)[0]  # (B, T, D), final LayerNorm applied
        logits = self.head(self.dropout(self.body.pool(self.pool(h, pad_mask))))
        lm_logits = None
        if lm:
            has_next = pad_mask[:, 1:]  # (B, T-1): position t predicts ids[:, t + 1]
            lm_logits = self.body.logits(h[:, :-1][has_next])
        return ClassifierOutput(logits, lm_logits)
