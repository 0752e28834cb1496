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

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from atento.attention import Attention, make_score
from atento.data.vocab import PAD_ID
from atento.kernels import Linear
from atento.models.base import (  # EncoderOutput re-exported: atento.models.rnn.EncoderOutput
    DEFAULT_OPTIONS,
    DecodeOptions,
    EncoderOutput,
)
from atento.nn.dropout import Dropout

RNNHidden = Tensor | tuple[Tensor, Tensor]  # GRU: h (L, B, H); LSTM: (h, c)

__all__ = ["EncoderOutput", "RNNDecoder", "RNNDecoderState", "RNNEncoder", "RNNSeq2Seq"]


@dataclass
class RNNDecoderState:
    """Everything the decoder carries between steps, one row per hypothesis (N rows).

    Implements `atento.models.base.DecoderState`. Every row holds its own copy of the source
    side (memory, keys, mask), so `reorder` and `select` are the same row gather; `expand`
    repeats rows. Tensors are shared with the parent state, never modified in place.
    """

    hidden: RNNHidden  # (L, N, H) or (h, c)
    prev_out: Tensor | None  # (N, H) attentional vector h~_{t-1} for input feeding
    memory: Tensor  # (N, S, H)
    keys: Tensor | None  # score.prepare_keys(memory), computed once per source
    memory_mask: Tensor  # (N, S)

    @property
    def device(self) -> torch.device:
        return self.memory.device

    def _map(self, fn: Callable[[Tensor, int], Tensor]) -> RNNDecoderState:
        """fn(tensor, row dimension) applied to every tensor (hidden states keep rows in dim 1)."""
        hidden = self.hidden
        hidden = tuple(fn(h, 1) for h in hidden) if isinstance(hidden, tuple) else fn(hidden, 1)
        return RNNDecoderState(
            hidden=hidden,
            prev_out=None if self.prev_out is None else fn(self.prev_out, 0),
            memory=fn(self.memory, 0),
            keys=None if self.keys is None else fn(self.keys, 0),
            memory_mask=fn(self.memory_mask, 0),
        )

    def expand(self, k: int) -> RNNDecoderState:
        """Each row repeated k times: row b -> rows b*k .. b*k+k-1."""
        return self._map(lambda x, dim: x.repeat_interleave(k, dim=dim))

    def select(self, rows: Tensor) -> RNNDecoderState:
        """Rows `rows` (N',) in any order, repeats allowed."""
        return self._map(lambda x, dim: x.index_select(dim, rows))

    def reorder(self, rows: Tensor) -> RNNDecoderState:
        """Beam search's reorder (rows (N',) keep groups intact): a plain row gather here."""
        return self.select(rows)


def _embedding(vocab_size: int, emb_size: int, pad_id: int = PAD_ID) -> nn.Embedding:
    """Embeddings ~ N(0, 1/emb_size): unit-norm rows, so tied output logits start near uniform;
    the `pad_id` row stays zero."""
    embed = nn.Embedding(vocab_size, emb_size, padding_idx=pad_id)
    nn.init.normal_(embed.weight, std=emb_size**-0.5)
    with torch.no_grad():
        embed.weight[pad_id].zero_()
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
        dropout: float, pad_id: int = PAD_ID,
    ) -> None:  # fmt: skip
        super().__init__()
        if hidden_size % 2:
            raise ValueError("model.hidden_size must be even (it is split over two directions)")
        self.embed = _embedding(vocab_size, emb_size, pad_id)
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
        pad_id: int = PAD_ID,
    ) -> None:  # fmt: skip
        super().__init__()
        self.layers = layers
        self.cell = cell
        self.input_feeding = input_feeding and attention != "none"
        self.embed = _embedding(vocab_size, emb_size, pad_id)
        self.dropout = Dropout(dropout)
        in_size = emb_size + (hidden_size if self.input_feeding else 0)
        self.rnn = _rnn(cell, in_size, hidden_size, layers, dropout)
        self.bridge = Linear(hidden_size, layers * hidden_size)
        self.attention: Attention | None = None
        if attention != "none":
            score = make_score(
                attention, query_size=hidden_size, key_size=hidden_size, max_src_len=max_src_len
            )
            self.attention = Attention(score)
            self.combine = Linear(2 * hidden_size, hidden_size, bias=False)
        self.output = Linear(hidden_size, vocab_size)

    def init_state(self, enc: EncoderOutput) -> RNNDecoderState:
        """Start from the top encoder layer's final state, bridged: s_0 = tanh(W [h_fwd; h_bwd])."""

        def bridge(final: Tensor) -> Tensor:
            top = _merge_directions(final)[-1]  # (B, H)
            init = torch.tanh(self.bridge(top))  # (B, L*H)
            return init.view(top.size(0), self.layers, -1).transpose(0, 1).contiguous()

        if isinstance(enc.final, tuple):
            hidden: RNNHidden = (bridge(enc.final[0]), bridge(enc.final[1]))
        else:
            hidden = bridge(enc.final)
        keys = None if self.attention is None else self.attention.prepare_keys(enc.memory)
        prev_out = enc.memory.new_zeros(enc.memory.size(0), enc.memory.size(2))
        return RNNDecoderState(
            hidden=hidden,
            prev_out=prev_out if self.input_feeding else None,
            memory=enc.memory,
            keys=keys,
            memory_mask=enc.memory_mask,
        )

    def forward(
        self, tgt_ids: Tensor, state: RNNDecoderState, select: Tensor | None = None,
        output_inputs: bool = False,
    ) -> tuple[Tensor, RNNDecoderState, Tensor | None]:  # fmt: skip
        """tgt_ids (B, T) -> logits (B, T, V) (or (N, V) at the `select`ed positions; with
        `output_inputs` the output layer's inputs instead), the state after step T, weights
        (B, T, S) or None."""
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
        new_state = RNNDecoderState(hidden, prev, state.memory, state.keys, state.memory_mask)
        out = self.dropout(out)
        rows = out if select is None else out[select]
        return (rows if output_inputs else self.output(rows)), new_state, w

    def _attend(self, rnn_out: Tensor, state: RNNDecoderState) -> tuple[Tensor, Tensor | None]:
        if self.attention is None:
            return rnn_out, None
        context, weights = self.attention(rnn_out, state.keys, state.memory, state.memory_mask)
        return torch.tanh(self.combine(torch.cat([context, rnn_out], -1))), weights


class RNNSeq2Seq(nn.Module):
    """Encoder-decoder; `step` is what the searchers call, `forward` is teacher forcing."""

    def __init__(
        self, *, src_vocab: int, tgt_vocab: int, emb_size: int, hidden_size: int,
        enc_layers: int, dec_layers: int, cell: str, dropout: float, attention: str,
        input_feeding: bool, max_src_len: int, tie_embeddings: bool = False, pad_id: int = PAD_ID,
    ) -> None:  # fmt: skip
        super().__init__()
        self.encoder = RNNEncoder(
            vocab_size=src_vocab, emb_size=emb_size, hidden_size=hidden_size,
            layers=enc_layers, cell=cell, dropout=dropout, pad_id=pad_id,
        )  # fmt: skip
        self.decoder = RNNDecoder(
            vocab_size=tgt_vocab, emb_size=emb_size, hidden_size=hidden_size, layers=dec_layers,
            cell=cell, dropout=dropout, attention=attention, input_feeding=input_feeding,
            max_src_len=max_src_len, pad_id=pad_id,
        )  # fmt: skip
        if tie_embeddings:
            if emb_size != hidden_size:
                raise ValueError("model.tie_embeddings needs emb_size == hidden_size")
            self.decoder.output.weight = self.decoder.embed.weight

    def check_options(self, options: DecodeOptions) -> None:
        """One attention, one head: `layer` must be -1 or 0 and `head` None (ValueError)."""
        if options.layer not in (-1, 0) or options.head is not None:
            raise ValueError(
                "layer and head choose among a Transformer's attentions; the RNN decoder has "
                "one (layer -1 or 0, head None)"
            )

    def encode(self, src_ids: Tensor, src_mask: Tensor) -> EncoderOutput:
        """src_ids (B, S), src_mask (B, S) True = real token -> annotations (B, S, H)."""
        return self.encoder(src_ids, src_mask)

    def init_state(
        self, enc: EncoderOutput, options: DecodeOptions = DEFAULT_OPTIONS
    ) -> RNNDecoderState:
        """B rows, one per source; `options` are checked (the state does not depend on them)."""
        self.check_options(options)
        return self.decoder.init_state(enc)

    def forward(
        self, src_ids: Tensor, src_mask: Tensor, tgt_in: Tensor, select: Tensor | None = None,
        options: DecodeOptions | None = None, hidden: bool = False,
    ) -> tuple[Tensor, Tensor | None]:  # fmt: skip
        """Teacher forcing: logits (B, T, V) and, with `options.attention`, the attention
        weights (B, T, S) (None without attention or when not asked for).

        `select` (B, T) bool: logits only at those positions, (N, V) in row-major order.
        `hidden`: the output layer's inputs instead of the logits (the fused output layer and
        loss of `atento.training.fused_output` apply `output_layer()` to them).
        """
        options = DEFAULT_OPTIONS if options is None else options
        state = self.init_state(self.encode(src_ids, src_mask), options)
        logits, _, weights = self.decoder(tgt_in, state, select, output_inputs=hidden)
        return logits, weights if options.attention else None

    def output_layer(self) -> tuple[Tensor, Tensor | None]:
        """The output layer's weight (V, H) and bias (V,)."""
        return self.decoder.output.weight, self.decoder.output.bias

    def step(
        self, last_ids: Tensor, state: RNNDecoderState, options: DecodeOptions = DEFAULT_OPTIONS
    ) -> tuple[Tensor, RNNDecoderState, Tensor | None]:
        """One incremental step: last_ids (N,) -> log-probs (N, V) fp32, new state, and the
        weights (N, S) when `options.attention` (else None)."""
        logits, state, weights = self.decoder(last_ids.unsqueeze(1), state)
        log_probs = F.log_softmax(logits.squeeze(1), dim=-1, dtype=torch.float32)
        if weights is None or not options.attention:
            return log_probs, state, None
        return log_probs, state, weights.squeeze(1)
