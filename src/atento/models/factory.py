"""The one place a config becomes a model."""

from __future__ import annotations

from torch import nn

from atento.config import Config


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
    raise ValueError(f"unknown model.arch {m.arch!r}")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
