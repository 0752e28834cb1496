"""Show, Attend and Tell (Xu et al. 2015): an LSTM decoder with soft attention over image regions.

The encoder side is a grid of P region vectors a_i (frozen CNN features, (B, P, C), P = 49 for
EfficientNet-Lite0's 7 x 7 map), projected to the memory width D; the memory mask is all True,
so the decoder attends over regions exactly as the translation decoder attends over source
annotations, and search, scoring and heatmaps need no special case. Per step (Xu et al. 2015,
Sec. 3.1.2, Eqs. 4-7 and the deep output of Eq. 7):

    h_0, c_0   = tanh(W_h mean_i a_i), tanh(W_c mean_i a_i)           (initial state)
    e_ti       = v^T tanh(W s_{t-1} + U a_i)                          (additive score)
    alpha_t    = softmax_i(e_ti);  z_t = beta_t * sum_i alpha_ti a_i   (soft attention)
    beta_t     = sigmoid(f_beta(h_{t-1}))                             (gating scalar, Sec. 4.2.1)
    h_t, c_t   = LSTM([E y_{t-1}; z_t], (h_{t-1}, c_{t-1}))
    p(y_t|...) = softmax(L_o tanh(E y_{t-1} + L_h h_t + L_z z_t))      (deep output)

Attention comes before the recurrence (it reads h_{t-1}), so teacher forcing is a loop over
the T steps, like input feeding in `atento.models.rnn`. The decoder state is that module's
`RNNDecoderState` (hidden (h, c) as (1, N, H), memory, prepared keys, mask), so `expand`,
`reorder` and `select` are the same row gathers.

With `model.finetune_blocks: N > 0` the model also holds the encoder's last N blocks and head
(`atento.captioning.encoder.EncoderTail`) and its sources are the cached activations at the cut
before them, (B, P, C) = (B, 49, 192) for N = 1: `encode` runs the tail first, so training,
validation, search, checkpoints and every decoding command use the fine-tuned tail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from atento.attention import Attention, make_score
from atento.config import check
from atento.kernels import Linear
from atento.models.base import DEFAULT_OPTIONS, DecodeOptions, EncoderOutput
from atento.models.rnn import RNNDecoderState, _embedding
from atento.nn.dropout import Dropout

if TYPE_CHECKING:
    from atento.config import Config


@dataclass
class ShowAttendTellConfig:
    """`model.arch: show_attend_tell`: the captioning decoder over image regions."""

    arch: str = "show_attend_tell"
    emb_size: int = 256  # word embeddings and the deep output layer
    hidden_size: int = 512  # LSTM state and memory width D (regions are projected to it)
    dropout: float = 0.5  # on embeddings and the deep output
    gate: bool = True  # the gating scalar beta_t = sigmoid(f_beta(h_{t-1})) on the context
    finetune_blocks: int = 0  # 0 = frozen encoder; N = its last N MBConv blocks + head train
    finetune_lr_scale: float = 0.1  # the tail's learning rate is train.lr times this

    def validate(self, cfg: Config) -> None:
        from atento.captioning.encoder import MODEL_NAME, N_BLOCKS

        check(0.0 <= self.dropout < 1.0, cfg, "model.dropout", "a value in [0, 1)")
        check(0 <= self.finetune_blocks <= N_BLOCKS, cfg, "model.finetune_blocks",
              f"0 = frozen to {N_BLOCKS}, the MBConv blocks of {MODEL_NAME}")  # fmt: skip
        check(self.finetune_lr_scale > 0, cfg, "model.finetune_lr_scale", "a positive number")
        check(self.emb_size > 0, cfg, "model.emb_size", "a positive number")
        check(self.hidden_size > 0, cfg, "model.hidden_size", "a positive number")


class ShowAttendTell(nn.Module):
    """Region features (B, P, C) -> caption log-probs; `encode` / `init_state` / `step` for the
    searchers, teacher-forcing `forward` for training and scoring (module doc)."""

    def __init__(
        self, *, tgt_vocab: int, feature_size: int, emb_size: int, hidden_size: int,
        dropout: float, gate: bool = True, tail: nn.Module | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        D = H = hidden_size
        self.tail = tail  # the encoder's trainable end: cut activations -> (B, P, feature_size)
        self.project = Linear(feature_size, D)  # a_i -> memory (B, P, D)
        self.embed = _embedding(tgt_vocab, emb_size)
        self.init_h = Linear(D, H)
        self.init_c = Linear(D, H)
        self.attention = Attention(make_score("additive", query_size=H, key_size=D))
        self.gate = Linear(H, 1) if gate else None
        self.cell = nn.LSTMCell(emb_size + D, H)
        self.out_h = Linear(H, emb_size)
        self.out_z = Linear(D, emb_size, bias=False)
        self.output = Linear(emb_size, tgt_vocab)
        self.dropout = Dropout(dropout)

    def check_options(self, options: DecodeOptions) -> None:
        """One attention, one head: `layer` must be -1 or 0 and `head` None (ValueError)."""
        if options.layer not in (-1, 0) or options.head is not None:
            raise ValueError(
                "layer and head choose among a Transformer's attentions; the captioning "
                "decoder has one (layer -1 or 0, head None)"
            )

    def encode(self, features: Tensor, feature_mask: Tensor) -> EncoderOutput:
        """features (B, P, C) region vectors, feature_mask (B, P) True = real region (all True
        for a CNN grid) -> memory (B, P, D). With an encoder tail, features are the activations
        at the cut, (B, P', C'), and the tail makes the regions (B, P, C) first."""
        if self.tail is not None:
            features = self.tail(features)
            feature_mask = feature_mask.new_ones(features.shape[:2])
        return EncoderOutput(memory=self.project(features), memory_mask=feature_mask)

    def init_state(
        self, enc: EncoderOutput, options: DecodeOptions = DEFAULT_OPTIONS
    ) -> RNNDecoderState:
        """h_0, c_0 from the mean of the real regions (Xu et al. 2015, Sec. 3.1.2)."""
        self.check_options(options)
        mask = enc.memory_mask.unsqueeze(-1).to(enc.memory.dtype)  # (B, P, 1)
        mean = (enc.memory * mask).sum(1) / mask.sum(1).clamp(min=1)  # (B, D)
        h, c = torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean))
        keys = self.attention.prepare_keys(enc.memory)  # (B, P, A): U a_i, once per image
        return RNNDecoderState((h[None], c[None]), None, enc.memory, keys, enc.memory_mask)

    def _advance(
        self, emb: Tensor, h: Tensor, c: Tensor, state: RNNDecoderState
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One step from embedded y_{t-1} (N, E) and (h, c) (N, H) -> h_t, c_t, z_t (N, D) and
        the weights alpha_t (N, P)."""
        context, weights = self.attention(h.unsqueeze(1), state.keys, state.memory,
                                          state.memory_mask)  # fmt: skip
        z = context.squeeze(1)  # (N, D)
        if self.gate is not None:
            z = torch.sigmoid(self.gate(h)) * z  # beta_t: how much the image matters now
        h, c = self.cell(torch.cat([emb, z], -1), (h, c))
        return h, c, z, weights.squeeze(1)

    def _logits(self, emb: Tensor, h: Tensor, z: Tensor) -> Tensor:
        """The deep output layer: logits (..., V) from E y_{t-1}, h_t and z_t (..., *)."""
        return self.output(self.dropout(torch.tanh(emb + self.out_h(h) + self.out_z(z))))

    def forward(
        self, features: Tensor, feature_mask: Tensor, tgt_in: Tensor,
        select: Tensor | None = None, options: DecodeOptions | None = None,
    ) -> tuple[Tensor, Tensor | None]:  # fmt: skip
        """Teacher forcing: tgt_in (B, T) = BOS + y -> logits (B, T, V) (or (N, V) at the
        `select`ed positions) and, with `options.attention`, the weights (B, T, P)."""
        options = DEFAULT_OPTIONS if options is None else options
        state = self.init_state(self.encode(features, feature_mask), options)
        emb = self.dropout(self.embed(tgt_in))  # (B, T, E)
        h, c = state.hidden[0][0], state.hidden[1][0]
        hs, zs, ws = [], [], []
        for t in range(tgt_in.size(1)):
            h, c, z, w = self._advance(emb[:, t], h, c, state)
            hs.append(h)
            zs.append(z)
            ws.append(w)
        hs, zs = torch.stack(hs, 1), torch.stack(zs, 1)  # (B, T, H), (B, T, D)
        if select is not None:
            emb, hs, zs = emb[select], hs[select], zs[select]  # (N, *)
        logits = self._logits(emb, hs, zs)
        return logits, torch.stack(ws, 1) if options.attention else None

    def step(
        self, last_ids: Tensor, state: RNNDecoderState, options: DecodeOptions = DEFAULT_OPTIONS
    ) -> tuple[Tensor, RNNDecoderState, Tensor | None]:
        """One incremental step: last_ids (N,) -> log-probs (N, V) fp32, the new state, and the
        weights over the regions (N, P) when `options.attention` (else None)."""
        emb = self.dropout(self.embed(last_ids))  # (N, E)
        h, c, z, weights = self._advance(emb, state.hidden[0][0], state.hidden[1][0], state)
        log_probs = F.log_softmax(self._logits(emb, h, z), dim=-1, dtype=torch.float32)
        new = RNNDecoderState((h[None], c[None]), None, state.memory, state.keys,
                              state.memory_mask)  # fmt: skip
        return log_probs, new, weights if options.attention else None


def doubly_stochastic_penalty(weights: Tensor, step_mask: Tensor) -> Tensor:
    """sum_b sum_i (1 - sum_t alpha_bti)^2 over the real steps (Xu et al. 2015, Eq. 14):
    weights (B, T, P), step_mask (B, T) True = a real output step -> a scalar (summed over
    the batch, like the token loss it is added to, times lambda)."""
    totals = (weights.float() * step_mask.unsqueeze(-1)).sum(1)  # (B, P): attention per region
    return ((1.0 - totals) ** 2).sum()


def build_show_attend_tell(cfg: Config, *, tgt_vocab: int, feature_size: int) -> nn.Module:
    m: ShowAttendTellConfig = cfg.model
    tail = None
    if m.finetune_blocks:  # the pretrained blocks (a checkpoint's weights replace them)
        from atento.captioning.encoder import EncoderTail

        tail = EncoderTail.pretrained(m.finetune_blocks, lr_scale=m.finetune_lr_scale)
    return ShowAttendTell(
        tgt_vocab=tgt_vocab, feature_size=feature_size, emb_size=m.emb_size,
        hidden_size=m.hidden_size, dropout=m.dropout, gate=m.gate, tail=tail,
    )  # fmt: skip
