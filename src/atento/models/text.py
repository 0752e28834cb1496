"""The text Transformer architectures: `model.arch: gpt` (a decoder-only language model,
Radford et al. 2018/2019) and `model.arch: bert` (an encoder-only stack, Devlin et al. 2019).

Both are `models.lm.TextTransformer`, causal for GPT and bidirectional for BERT, with the same
model keys (`TextTransformerConfig`); BERT changes two defaults and adds `pooling`. For BERT the
task's vocabulary size is the tokenizer's `embedding_rows`: one row more than its vocabulary
when [MASK] is the extra id after it (atento's own tokenizers), the vocabulary itself when
[MASK] is one of its ids (an imported BERT). With `num_classes` (`task: classify`) the builder
wraps the Transformer in a `models.classifier.SentenceClassifier`.

The variant keys (`pre_norm`, `activation`, `norm_eps`, `embed_norm`, `type_vocab`,
`head_transform`, `output_bias`, `pooler`) default to atento's own stack; `atento import hf`
sets them to GPT-2's and BERT's (docs/design.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import nn

from atento.config import check
from atento.errors import AtentoError
from atento.models.classifier import SentenceClassifier
from atento.models.factory import validate_stack
from atento.models.lm import TextTransformer
from atento.models.pretrained import VARIANT_KEYS, Pretrained, copy_body
from atento.nn.feedforward import ACTIVATIONS

if TYPE_CHECKING:
    from atento.config import Config


@dataclass
class TextTransformerConfig:
    """The `model` keys of a text Transformer (`gpt`, `bert`); the defaults are GPT's."""

    arch: str = ""
    d_model: int = 128
    heads: int = 4
    layers: int = 4
    ff_size: int = 512
    dropout: float = 0.0
    attention_dropout: float = 0.0
    positions: str = "learned"  # learned | sinusoidal
    context: int = 64  # the most tokens the model reads at once (learned positions)
    init_from: str = ""  # a run whose weights start this one (models/pretrained)
    # the variants of imported models (atento.hf); the defaults are atento's own stack
    pre_norm: bool = True  # false: post-norm layers, no final norm (BERT)
    activation: str = "relu"  # relu | gelu | gelu_tanh | swish (nn/feedforward.py)
    norm_eps: float = 1e-5  # every LayerNorm's epsilon (BERT: 1e-12)
    embed_norm: bool = False  # LayerNorm after the embedding sum (BERT)
    type_vocab: int = 0  # token-type embeddings (BERT: 2); one sentence reads type 0
    head_transform: bool = False  # dense + activation + LayerNorm before the output (BERT MLM)
    output_bias: bool = False  # a bias on the tied output layer (BERT MLM)
    pooler: bool = False  # dense + tanh on the pooled state before the classifier (BERT)

    def validate(self, cfg: Config) -> None:
        if self.init_from and cfg.task not in ("classify", "mlm", "lm"):
            raise AtentoError(
                f"config: model.init_from is for task: classify, mlm or lm, not task: {cfg.task}"
            )
        validate_stack(self, cfg)
        check(self.context >= 2, cfg, "model.context", "at least 2")
        check(self.ff_size >= 1, cfg, "model.ff_size", "at least 1")
        check(self.activation in ACTIVATIONS, cfg, "model.activation", ", ".join(ACTIVATIONS))
        check(self.norm_eps > 0, cfg, "model.norm_eps", "a positive number")
        check(self.type_vocab >= 0, cfg, "model.type_vocab", "0 or more")

    def variant(self) -> dict[str, object]:
        """The variant keys as `TextTransformer`'s keyword arguments."""
        return {key: getattr(self, key) for key in VARIANT_KEYS}


@dataclass
class GPTConfig(TextTransformerConfig):
    """`model.arch: gpt`: a decoder-only Transformer language model (causal self-attention)."""

    arch: str = "gpt"


@dataclass
class BertConfig(TextTransformerConfig):
    """`model.arch: bert`: an encoder-only Transformer (bidirectional self-attention)."""

    arch: str = "bert"
    dropout: float = 0.1
    context: int = 128  # tokens the model reads at once, [CLS] and [SEP] included
    pooling: str = "mean"  # cls | mean: the sentence vector the classifier reads

    def validate(self, cfg: Config) -> None:
        super().validate(cfg)
        check(self.pooling in ("cls", "mean"), cfg, "model.pooling", "cls, mean")


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
        context=m.context, positions=m.positions, causal=causal, **m.variant(),
    )  # fmt: skip
    if pretrained is not None:
        copy_body(body, pretrained)
    if not num_classes:
        return body
    pooling = "last" if causal else m.pooling
    return SentenceClassifier(body=body, num_classes=num_classes, pooling=pooling,
                              dropout=m.dropout)  # fmt: skip


def build_gpt(
    cfg: Config, *, vocab_size: int, num_classes: int = 0, pretrained: Pretrained | None = None
) -> nn.Module:
    """A language model, or with `num_classes` a classifier on the last token's state
    (Radford et al. 2018)."""
    return build_text_model(cfg, causal=True, vocab_size=vocab_size, num_classes=num_classes,
                            pretrained=pretrained)  # fmt: skip


def build_bert(
    cfg: Config, *, vocab_size: int, num_classes: int = 0, pretrained: Pretrained | None = None
) -> nn.Module:
    """vocab_size counts the [MASK] row (the tokenizer's vocabulary + 1)."""
    return build_text_model(cfg, causal=False, vocab_size=vocab_size, num_classes=num_classes,
                            pretrained=pretrained)  # fmt: skip
