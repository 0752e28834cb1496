"""The built-in encoder-decoders: each one's `model` section and the function that builds it.

A config's `model` section is the dataclass of its `model.arch` (atento.components), so an
RNN-only key given to a Transformer (or the reverse) is an error that names it. Values are
checked here, when the config is validated; the builders only build.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import nn

from atento.config import check
from atento.errors import AtentoError

if TYPE_CHECKING:
    from atento.config import Config
    from atento.models.pretrained_seq2seq import PretrainedSeq2Seq

ATTENTION_CHOICES = ("none", "cosine", "additive", "location", "general", "dot", "scaled_dot")


@dataclass
class RNNConfig:
    """`model.arch: rnn`: bidirectional GRU/LSTM encoder, attention decoder (models/rnn.py)."""

    arch: str = "rnn"
    cell: str = "gru"  # gru | lstm
    emb_size: int = 256
    hidden_size: int = 256  # annotation and decoder width (each encoder direction: half)
    enc_layers: int = 1
    dec_layers: int = 1
    dropout: float = 0.2
    attention: str = "additive"  # none | cosine | additive | location | general | dot | scaled_dot
    input_feeding: bool = False  # feed the previous attentional vector into the decoder RNN
    max_src_len: int = 0  # location attention's window; 0 = data.max_len + 2
    tie_embeddings: bool = False  # output layer shares the target embedding matrix

    def validate(self, cfg: Config) -> None:
        check(self.cell in ("gru", "lstm"), cfg, "model.cell", "gru, lstm")
        check(self.attention in ATTENTION_CHOICES, cfg, "model.attention",
              ", ".join(ATTENTION_CHOICES))  # fmt: skip
        check(0.0 <= self.dropout < 1.0, cfg, "model.dropout", "a value in [0, 1)")
        check(self.hidden_size > 0 and self.hidden_size % 2 == 0, cfg, "model.hidden_size",
              "a positive even number: it is split over two encoder directions")  # fmt: skip
        check(self.emb_size > 0, cfg, "model.emb_size", "a positive number")
        check(self.enc_layers >= 1, cfg, "model.enc_layers", "at least 1")
        check(self.dec_layers >= 1, cfg, "model.dec_layers", "at least 1")
        if self.tie_embeddings and self.emb_size != self.hidden_size:
            raise AtentoError(
                "config: model.tie_embeddings needs model.emb_size == model.hidden_size "
                f"(got {self.emb_size} and {self.hidden_size})"
            )


def validate_stack(m, cfg: Config) -> None:
    """The keys every Transformer stack has (encoder-decoder, GPT, BERT-style): positions,
    dropouts, layers, and a width that the heads divide."""
    check(m.positions in ("sinusoidal", "learned"), cfg, "model.positions", "sinusoidal, learned")
    check(0.0 <= m.dropout < 1.0, cfg, "model.dropout", "a value in [0, 1)")
    check(0.0 <= m.attention_dropout < 1.0, cfg, "model.attention_dropout", "a value in [0, 1)")
    check(m.layers >= 1, cfg, "model.layers", "at least 1")
    if m.heads < 1 or m.d_model % m.heads:
        raise AtentoError(
            f"config: model.d_model={m.d_model} must be a multiple of model.heads={m.heads}"
        )


@dataclass
class TransformerConfig:
    """`model.arch: transformer`: encoder-decoder Transformer (models/transformer.py)."""

    arch: str = "transformer"
    d_model: int = 256
    heads: int = 4
    ff_size: int = 1024
    layers: int = 3  # encoder layers and decoder layers (each)
    dropout: float = 0.1
    attention_dropout: float = 0.0
    pre_norm: bool = False  # post-norm as in Vaswani et al. 2017; pre-norm as an option
    positions: str = "sinusoidal"  # sinusoidal | learned
    max_positions: int = 256  # learned positions / precomputed sinusoids
    share_embeddings: bool = True  # one embedding matrix for source, target and output
    tie_embeddings: bool = False  # output layer = target embeddings (implied by sharing)
    # options of imported models (Marian / opus-mt); the defaults are atento's own Transformer
    activation: str = "relu"  # the feed-forward's: relu | gelu | gelu_tanh | swish
    scale_embeddings: bool = True  # embeddings times sqrt(d_model) (Marian: scale_embedding)
    sinusoids: str = "interleaved"  # sin/cos alternating, or in `halves` (Marian)
    output_bias: bool = False  # a fixed (untrained) bias on the logits (final_logits_bias)
    init_from: str = ""  # a translation run whose weights start this one (pretrained_seq2seq)

    def validate(self, cfg: Config) -> None:
        from atento.nn.feedforward import ACTIVATIONS

        validate_stack(self, cfg)
        check(self.max_positions >= 1, cfg, "model.max_positions", "at least 1")
        check(self.activation in ACTIVATIONS, cfg, "model.activation", ", ".join(ACTIVATIONS))
        check(self.sinusoids in ("interleaved", "halves"), cfg, "model.sinusoids",
              "interleaved, halves")  # fmt: skip
        max_len = getattr(cfg.data, "max_len", None)
        if (
            self.positions == "learned"
            and max_len is not None
            and not 0 < max_len < self.max_positions
        ):
            raise AtentoError(
                f"config: learned positions stop at model.max_positions={self.max_positions}, so "
                f"data.max_len={max_len} must be between 1 and {self.max_positions - 1}"
            )
        if self.share_embeddings and not getattr(cfg.data, "joint_vocab", True):
            raise AtentoError(
                "config: model.share_embeddings=true needs data.joint_vocab=true "
                "(one vocabulary for source and target), or set model.share_embeddings=false"
            )


def build_rnn(cfg: Config, *, src_vocab: int, tgt_vocab: int, pad_id: int = 0) -> nn.Module:
    from atento.models.rnn import RNNSeq2Seq

    m: RNNConfig = cfg.model
    return RNNSeq2Seq(
        src_vocab=src_vocab, tgt_vocab=tgt_vocab, emb_size=m.emb_size,
        hidden_size=m.hidden_size, enc_layers=m.enc_layers, dec_layers=m.dec_layers,
        cell=m.cell, dropout=m.dropout, attention=m.attention, input_feeding=m.input_feeding,
        max_src_len=m.max_src_len or cfg.data.max_len + 2, tie_embeddings=m.tie_embeddings,
        pad_id=pad_id,
    )  # fmt: skip


def build_transformer(
    cfg: Config, *, src_vocab: int, tgt_vocab: int, pad_id: int = 0,
    pretrained: PretrainedSeq2Seq | None = None,
) -> nn.Module:  # fmt: skip
    """The encoder-decoder of `cfg.model`, with `model.init_from`'s weights when given."""
    from atento.models.pretrained_seq2seq import copy_weights
    from atento.models.transformer import TransformerSeq2Seq

    m: TransformerConfig = cfg.model
    model = TransformerSeq2Seq(
        src_vocab=src_vocab, tgt_vocab=tgt_vocab, d_model=m.d_model, heads=m.heads,
        ff_size=m.ff_size, layers=m.layers, dropout=m.dropout,
        attention_dropout=m.attention_dropout, pre_norm=m.pre_norm, positions=m.positions,
        max_positions=m.max_positions, share_embeddings=m.share_embeddings,
        tie_embeddings=m.tie_embeddings, pad_id=pad_id, activation=m.activation,
        scale_embeddings=m.scale_embeddings, sinusoids=m.sinusoids, output_bias=m.output_bias,
    )  # fmt: skip
    if pretrained is not None:
        copy_weights(model, pretrained)
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
