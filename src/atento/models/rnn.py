"""RNN encoder-decoder with optional attention over a bidirectional encoder's annotations.

Encoder: embeddings -> bidirectional GRU/LSTM; the annotations h_s = [h_s(fwd); h_s(bwd)] are
`hidden_size` wide (each direction has hidden_size / 2 units, as in OpenNMT-py), so every score
function, `dot` included, compares vectors of one width.

Decoder (Luong et al. 2015, global attention; Bahdanau et al. 2015's additive score is one of
the choices):
    h_t        = RNN([E y_{t-1}; h~_{t-1} if input feeding], h_{t-1})
    c_t, a_t   = Attention(query=h_t, keys=prepare_keys(memory), values=memory)
    h~_t       = tanh(W_c [c_t; h_t])
    p(y_t|...) = softmax(W_o h~_t)
With attention `none` the decoder starts from the encoder's final state, sees no context and
h~_t = h_t: the plain encoder-decoder whose quality decays on long sentences.

One `Decoder.forward` serves teacher forcing (T = target length) and incremental decoding
(T = 1); without input feeding the whole target runs through the RNN in one call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from atento.attention import Attention, make_score
from atento.data.vocab import PAD_ID
from atento.models.base import EncoderOutput  # re-exported: atento.models.rnn.EncoderOutput
from atento.nn.dropout import Dropout

RNNState = Tensor | tuple[Tensor, Tensor]  # GRU: h (L, B, H); LSTM: (h, c)

__all__ = ["DecoderState", "EncoderOutput", "RNNDecoder", "RNNEncoder", "RNNSeq2Seq"]


def _select(state: RNNState, index: Tensor, dim: int) -> RNNState:
    if isinstance(state, tuple):
        return tuple(s.index_select(dim, index) for s in state)
    return state.index_select(dim, index)


@dataclass
class DecoderState:
    """Everything the decoder carries between steps; rows can be selected for beam search."""

    hidden: RNNState  # (L, N, H) or (h, c)
    prev_out: Tensor | None  # (N, H) attentional vector h~_{t-1} for input feeding
    memory: Tensor  # (N, S, H)
    keys: Tensor | None  # score.prepare_keys(memory), computed once per source
    memory_mask: Tensor  # (N, S)

    def index_select(self, index: Tensor) -> DecoderState:
        """Keep / repeat / reorder rows (N) of every tensor: used to expand and prune beams."""
        return DecoderState(
            hidden=_select(self.hidden, index, 1),
            prev_out=None if self.prev_out is None else self.prev_out.index_select(0, index),
            memory=self.memory.index_select(0, index),
            keys=None if self.keys is None else self.keys.index_select(0, index),
            memory_mask=self.memory_mask.index_select(0, index),
        )


def _embedding(vocab_size: int, emb_size: int) -> nn.Embedding:
    """Embeddings ~ N(0, 1/emb_size): unit-norm rows, so tied output logits start near uniform."""
    embed = nn.Embedding(vocab_size, emb_size, padding_idx=PAD_ID)
    nn.init.normal_(embed.weight, std=emb_size**-0.5)
    with torch.no_grad():
        embed.weight[PAD_ID].zero_()
    return embed


def _rnn(cell: str, input_size: int, hidden_size: int, layers: int, dropout: float, **kw):
    cls = nn.GRU if cell == "gru" else nn.LSTM
    return cls(
        input_size,
        hidden_size,
        num_layers=layers,
        dropout=dropout if layers > 1 else 0.0,
        batch_first=True,
        **kw,
    )


class RNNEncoder(nn.Module):
    def __init__(
        self, *, vocab_size: int, emb_size: int, hidden_size: int, layers: int, cell: str,
        dropout: float,
    ) -> None:  # fmt: skip
        super().__init__()
        if hidden_size % 2:
            raise ValueError("model.hidden_size must be even (it is split over two directions)")
        self.embed = _embedding(vocab_size, emb_size)
        self.dropout = Dropout(dropout)
        self.rnn = _rnn(cell, emb_size, hidden_size // 2, layers, dropout, bidirectional=True)

    def forward(self, src_ids: Tensor, src_mask: Tensor) -> EncoderOutput:
        """src_ids (B, S), src_mask (B, S) -> annotations (B, S, H) and final state."""
        lengths = src_mask.sum(1).cpu()
        packed = pack_padded_sequence(
            self.dropout(self.embed(src_ids)), lengths, batch_first=True, enforce_sorted=False
        )
        out, final = self.rnn(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=src_ids.size(1))
        return EncoderOutput(memory=memory, memory_mask=src_mask, final=final)


def _merge_directions(state: Tensor) -> Tensor:
    """(2L, B, H/2) bidirectional final states -> (L, B, H), [forward; backward] per layer."""
    two_l, batch, half = state.shape
    return state.view(two_l // 2, 2, batch, half).transpose(1, 2).reshape(two_l // 2, batch, -1)


class RNNDecoder(nn.Module):
    def __init__(
        self, *, vocab_size: int, emb_size: int, hidden_size: int, layers: int, cell: str,
        dropout: float, attention: str, input_feeding: bool, max_src_len: int,
    ) -> None:  # fmt: skip
        super().__init__()
        self.layers = layers
        self.cell = cell
        self.input_feeding = input_feeding and attention != "none"
        self.embed = _embedding(vocab_size, emb_size)
        self.dropout = Dropout(dropout)
        in_size = emb_size + (hidden_size if self.input_feeding else 0)
        self.rnn = _rnn(cell, in_size, hidden_size, layers, dropout)
        self.bridge = nn.Linear(hidden_size, layers * hidden_size)
        self.attention: Attention | None = None
        if attention != "none":
            score = make_score(
                attention, query_size=hidden_size, key_size=hidden_size, max_src_len=max_src_len
            )
            self.attention = Attention(score)
            self.combine = nn.Linear(2 * hidden_size, hidden_size, bias=False)
        self.output = nn.Linear(hidden_size, vocab_size)

    def init_state(self, enc: EncoderOutput) -> DecoderState:
        """Start from the top encoder layer's final state, bridged: s_0 = tanh(W [h_fwd; h_bwd])."""

        def bridge(final: Tensor) -> Tensor:
            top = _merge_directions(final)[-1]  # (B, H)
            init = torch.tanh(self.bridge(top))  # (B, L*H)
            return init.view(top.size(0), self.layers, -1).transpose(0, 1).contiguous()

        if isinstance(enc.final, tuple):
            hidden: RNNState = (bridge(enc.final[0]), bridge(enc.final[1]))
        else:
            hidden = bridge(enc.final)
        keys = None if self.attention is None else self.attention.prepare_keys(enc.memory)
        prev_out = enc.memory.new_zeros(enc.memory.size(0), enc.memory.size(2))
        return DecoderState(
            hidden=hidden,
            prev_out=prev_out if self.input_feeding else None,
            memory=enc.memory,
            keys=keys,
            memory_mask=enc.memory_mask,
        )

    def forward(
        self, tgt_ids: Tensor, state: DecoderState, select: Tensor | None = None
    ) -> tuple[Tensor, DecoderState, Tensor | None]:
        """tgt_ids (B, T) -> logits (B, T, V) (or (N, V) at the `select`ed positions), the state
        after step T, weights (B, T, S) or None."""
        emb = self.dropout(self.embed(tgt_ids))  # (B, T, E)
        if self.input_feeding:
            outs, weights, prev, hidden = [], [], state.prev_out, state.hidden
            for t in range(emb.size(1)):
                rnn_out, hidden = self.rnn(torch.cat([emb[:, t], prev], -1).unsqueeze(1), hidden)
                out, w = self._attend(rnn_out, state)
                prev = out.squeeze(1)
                outs.append(out)
                weights.append(w)
            out, w = torch.cat(outs, 1), torch.cat(weights, 1)
        else:
            rnn_out, hidden = self.rnn(emb, state.hidden)  # (B, T, H)
            out, w = self._attend(rnn_out, state)
            prev = None
        new_state = DecoderState(hidden, prev, state.memory, state.keys, state.memory_mask)
        out = self.dropout(out)
        return self.output(out if select is None else out[select]), new_state, w

    def _attend(self, rnn_out: Tensor, state: DecoderState) -> tuple[Tensor, Tensor | None]:
        if self.attention is None:
            return rnn_out, None
        context, weights = self.attention(rnn_out, state.keys, state.memory, state.memory_mask)
        return torch.tanh(self.combine(torch.cat([context, rnn_out], -1))), weights


class RNNSeq2Seq(nn.Module):
    """Encoder-decoder; `step` is what the searchers call, `forward` is teacher forcing."""

    def __init__(
        self, *, src_vocab: int, tgt_vocab: int, emb_size: int, hidden_size: int,
        enc_layers: int, dec_layers: int, cell: str, dropout: float, attention: str,
        input_feeding: bool, max_src_len: int, tie_embeddings: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        self.encoder = RNNEncoder(
            vocab_size=src_vocab, emb_size=emb_size, hidden_size=hidden_size,
            layers=enc_layers, cell=cell, dropout=dropout,
        )  # fmt: skip
        self.decoder = RNNDecoder(
            vocab_size=tgt_vocab, emb_size=emb_size, hidden_size=hidden_size, layers=dec_layers,
            cell=cell, dropout=dropout, attention=attention, input_feeding=input_feeding,
            max_src_len=max_src_len,
        )  # fmt: skip
        if tie_embeddings:
            if emb_size != hidden_size:
                raise ValueError("model.tie_embeddings needs emb_size == hidden_size")
            self.decoder.output.weight = self.decoder.embed.weight
        self.need_attention = True  # False: `step` returns no weights (none kept by the search)

    def encode(self, src_ids: Tensor, src_mask: Tensor) -> EncoderOutput:
        return self.encoder(src_ids, src_mask)

    def init_state(self, enc: EncoderOutput) -> DecoderState:
        return self.decoder.init_state(enc)

    def forward(
        self, src_ids: Tensor, src_mask: Tensor, tgt_in: Tensor, select: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing: logits (B, T, V) and attention weights (B, T, S) or None.

        `select` (B, T) bool: logits only at those positions, (N, V) in row-major order.
        """
        state = self.init_state(self.encode(src_ids, src_mask))
        logits, _, weights = self.decoder(tgt_in, state, select)
        return logits, weights

    def step(
        self, last_ids: Tensor, state: DecoderState
    ) -> tuple[Tensor, DecoderState, Tensor | None]:
        """One incremental step: last_ids (N,) -> log-probs (N, V), new state, weights (N, S)."""
        logits, state, weights = self.decoder(last_ids.unsqueeze(1), state)
        log_probs = F.log_softmax(logits.squeeze(1), dim=-1, dtype=torch.float32)
        if weights is None or not self.need_attention:
            return log_probs, state, None
        return log_probs, state, weights.squeeze(1)
