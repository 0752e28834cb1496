"""The one place a config becomes a model."""

from __future__ import annotations

from torch import nn

from atento.config import Config
from atento.errors import AtentoError


def build_model(cfg: Config, *, src_vocab: int, tgt_vocab: int) -> nn.Module:
    """Map `model.arch` (and the other model keys) to a freshly initialised model."""
    m = cfg.model
    if m.arch == "rnn":
        from atento.models.rnn import RNNSeq2Seq

        return RNNSeq2Seq(
            src_vocab=src_vocab,
            tgt_vocab=tgt_vocab,
            emb_size=m.emb_size,
            hidden_size=m.hidden_size,
            enc_layers=m.enc_layers,
            dec_layers=m.dec_layers,
            cell=m.cell,
            dropout=m.dropout,
            attention=m.attention,
            input_feeding=m.input_feeding,
            max_src_len=m.max_src_len or cfg.data.max_len + 2,
            tie_embeddings=m.tie_embeddings,
        )
    if m.arch == "transformer":
        from atento.models.transformer import TransformerSeq2Seq

        if m.share_embeddings and not cfg.data.joint_vocab:
            raise AtentoError(
                "config: model.share_embeddings=true needs data.joint_vocab=true "
                "(one vocabulary for source and target), or set model.share_embeddings=false"
            )
        if m.heads < 1 or m.d_model % m.heads:
            raise AtentoError(
                f"config: model.d_model={m.d_model} must be a multiple of model.heads={m.heads}"
            )
        return TransformerSeq2Seq(
            src_vocab=src_vocab,
            tgt_vocab=tgt_vocab,
            d_model=m.d_model,
            heads=m.heads,
            ff_size=m.ff_size,
            layers=m.layers,
            dropout=m.dropout,
            attention_dropout=m.attention_dropout,
            pre_norm=m.pre_norm,
            positions=m.positions,
            max_positions=m.max_positions,
            share_embeddings=m.share_embeddings,
            tie_embeddings=m.tie_embeddings,
        )
    raise ValueError(f"unknown model.arch {m.arch!r}")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
