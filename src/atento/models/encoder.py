"""BERT-style encoder (Devlin et al. 2019) and the sentence classifier on a text Transformer.

`model.arch: bert` is `models.lm.TextTransformer` with `causal=False` (every position attends to
every real token, both directions) and one embedding row more than the tokenizer's vocabulary:
the last id is [MASK] (`mask_id = vocab_size - 1`), used by masked-language-model pretraining
(`task: mlm`). Its output layer is tied to the embeddings and predicts the masked tokens.

An input sentence is `[CLS] x_1 .. x_n [SEP]` with the shared special ids: BOS (2) stands for
[CLS] and EOS (3) for [SEP]; padding (0) is on the right and masked out of attention.

`SentenceClassifier` puts a linear head on one vector per sentence (`task: classify`):

    pooling cls   h_0, the [CLS] state (BERT)
    pooling mean  the mean of the real positions' states (the default: an MLM-pretrained
                  encoder never trains h_0 for anything, while every state carries the text)
    pooling last  the state of the last real token (GPT, Radford et al. 2018: a causal model's
                  only state that has read the whole sentence)

For a GPT the classifier also returns next-token logits for the auxiliary LM loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from atento.config import check
from atento.models.lm import GPTConfig, TextTransformer
from atento.models.pretrained import Pretrained, copy_body
from atento.nn.dropout import Dropout
from atento.registry import register_architecture

if TYPE_CHECKING:
    from atento.config import Config

POOLINGS = ("cls", "mean", "last")


@dataclass
class BertConfig(GPTConfig):
    """`model.arch: bert`: an encoder-only Transformer (bidirectional self-attention)."""

    arch: str = "bert"
    dropout: float = 0.1
    context: int = 128  # tokens the model reads at once, [CLS] and [SEP] included
    pooling: str = "mean"  # cls | mean: the sentence vector the classifier reads

    def validate(self, cfg: Config) -> None:
        super().validate(cfg)
        check(self.pooling in ("cls", "mean"), cfg, "model.pooling", "cls, mean")


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
        self.head = nn.Linear(d_model, num_classes)
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
            m = pad_mask.unsqueeze(-1).to(h.dtype)  # (B, T, 1)
            return (h * m).sum(1) / m.sum(1).clamp_min(1.0)
        last = pad_mask.long().sum(1).clamp_min(1) - 1  # (B,) index of the last real token
        return h[torch.arange(h.size(0), device=h.device), last]

    def forward(self, ids: Tensor, pad_mask: Tensor, *, lm: bool = False) -> ClassifierOutput:
        """ids (B, T), pad_mask (B, T) True = real token -> class logits (B, C) and, with
        `lm` (causal bodies), next-token logits at the positions whose next token is real."""
        h = self.body.hidden(ids, pad_mask=pad_mask)[0]  # (B, T, D), final LayerNorm applied
        logits = self.head(self.dropout(self.pool(h, pad_mask)))
        lm_logits = None
        if lm:
            has_next = pad_mask[:, 1:]  # (B, T-1): position t predicts ids[:, t + 1]
            lm_logits = self.body.logits(h[:, :-1][has_next])
        return ClassifierOutput(logits, lm_logits)


def build_text_model(
    cfg: Config, *, causal: bool, vocab_size: int, num_classes: int = 0,
    pretrained: Pretrained | None = None,
) -> nn.Module:  # fmt: skip
    """The text Transformer of `cfg.model` (GPT or BERT), with the pretrained weights copied in
    when given, wrapped in a `SentenceClassifier` when `num_classes` > 0."""
    m = cfg.model
    body = TextTransformer(
        vocab_size=vocab_size, d_model=m.d_model, heads=m.heads, layers=m.layers,
        ff_size=m.ff_size, dropout=m.dropout, attention_dropout=m.attention_dropout,
        context=m.context, positions=m.positions, causal=causal,
    )  # fmt: skip
    if pretrained is not None:
        copy_body(body, pretrained)
    if not num_classes:
        return body
    pooling = "last" if causal else m.pooling
    return SentenceClassifier(body=body, num_classes=num_classes, pooling=pooling,
                              dropout=m.dropout)  # fmt: skip


@register_architecture("bert", BertConfig)
def build_bert(
    cfg: Config, *, vocab_size: int, num_classes: int = 0, pretrained: Pretrained | None = None
) -> nn.Module:
    """vocab_size counts the [MASK] row (the tokenizer's vocabulary + 1)."""
    return build_text_model(cfg, causal=False, vocab_size=vocab_size, num_classes=num_classes,
                            pretrained=pretrained)  # fmt: skip
