"""Transformer encoder-decoder (Vaswani et al. 2017) behind the same interface as `RNNSeq2Seq`.

    x_0 = Dropout(E[y] * sqrt(D) + PE)           embeddings scaled by sqrt(D) (3.4), positions (3.5)
    encoder: N x [self-attention, feed-forward]   decoder: N x [causal self-, cross-attention, FFN]
    p(y_t | y_<t, x) = softmax(W_o h_t)            W_o = E with shared / tied embeddings (3.4)

The searchers see `encode`, `init_state` and `step` (`atento.models.base.EncoderDecoder`),
exactly as for the RNN: `step` feeds one token per row; with `DecodeOptions.use_cache` (default)
every decoder layer keeps a `LayerCache` in the `TransformerState`: self-attention keys/values
grow by one step, cross-attention keys/values are projected once per source. The state keeps
the source side (memory, mask, cross keys/values) once per source sentence and the target side
(tokens, self-attention caches) once per hypothesis: after `state.expand(K)` the K hypotheses of
a sentence share one copy, their K queries attend to it in one call, and `reorder` moves only the
target side. With `use_cache=False` each step re-runs the decoder over the whole prefix (the
baseline of benchmarks/kv_cache.py); both give the same log-probs.

Options for imported models (Marian / opus-mt, `atento.hf.marian`), off by default: the
feed-forward `activation`, `scale_embeddings=False` (no sqrt(D)), `sinusoids="halves"`
(Marian's layout of the positions), `output_bias` (a fixed bias on the logits, Marian's
final_logits_bias), and the tokenizer's `pad_id` for the embeddings' padding row.

The attention returned to search, heatmaps and analysis (when `DecodeOptions.attention`) is the
cross-attention of `options.layer` and `options.head` (default: last layer, mean over heads);
`attention_heads` gives every head of one layer. Options are arguments, never model attributes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from atento.attention.masks import causal_mask
from atento.attention.multihead import autocast_input
from atento.data.vocab import PAD_ID
from atento.kernels import Linear, decode_linear
from atento.models.base import DEFAULT_OPTIONS, DecodeOptions, EncoderOutput, log_softmax_fp32
from atento.nn.dropout import Dropout
from atento.nn.positional import LearnedPositions, make_positions
from atento.nn.transformer_layers import Block, DecoderLayer, LayerCache


@dataclass
class TransformerState:
    """Decoder state over N = G * `group` hypothesis rows; implements
    `atento.models.base.DecoderState` (`expand`, `reorder`, `select`).

    Source side, one row per source in use (G rows): memory (G, S, D), memory_mask (G, S) True =
    real token, and the cross-attention keys/values in `caches`. Hypothesis rows
    n * group .. n * group + group - 1 all read source row n (beam search: the K beams of a
    sentence). Target side, one row per hypothesis (N rows): tgt_ids (N, t) the tokens fed so far
    (BOS first; t is the next position) and the self-attention keys/values in `caches`.
    caches: one `LayerCache` per decoder layer, or None when decoding without the cache.
    `group` is set by `expand` alone; nothing infers it from an index.
    """

    memory: Tensor
    memory_mask: Tensor
    tgt_ids: Tensor
    caches: list[LayerCache] | None
    group: int = 1

    @property
    def device(self) -> torch.device:
        return self.memory.device

    def _build(
        self, target: Callable[[Tensor], Tensor], sources: Tensor | None, group: int
    ) -> TransformerState:
        """`target` applied to the target side (N rows); the source side gathered at `sources`
        (G',) (None: kept as it is, shared with this state)."""

        def source(x: Tensor) -> Tensor:
            return x if sources is None else x.index_select(0, sources)

        caches = None
        if self.caches is not None:
            caches = [
                LayerCache(
                    self_kv=None if c.self_kv is None else c.self_kv.map(target),
                    cross_kv=None if c.cross_kv is None else c.cross_kv.map(source),
                )
                for c in self.caches
            ]  # fmt: skip
        return TransformerState(
            source(self.memory), source(self.memory_mask), target(self.tgt_ids), caches, group
        )

    def _unless_same(self, sources: Tensor) -> Tensor | None:
        """None when `sources` (G',) is every source row in order (nothing to gather)."""
        same = sources.numel() == self.memory.size(0) and bool(
            (sources == torch.arange(sources.numel(), device=sources.device)).all()
        )
        return None if same else sources

    def expand(self, k: int) -> TransformerState:
        """Each hypothesis row repeated k times (row b -> rows b*k .. b*k+k-1); the source
        side is not copied: the group grows to group * k rows per source."""

        def target(x: Tensor) -> Tensor:
            return x.repeat_interleave(k, dim=0)

        return self._build(target, None, self.group * k)

    def reorder(self, rows: Tensor) -> TransformerState:
        """Rows (N',) that keep groups intact (each block of `group` consecutive rows reads one
        source, rows[j * group] // group for block j: beams reordered within their sentence,
        finished sentences dropped). Only the target side moves unless sentences are dropped
        or reordered, then the source side is gathered once per source."""
        if rows.numel() % self.group:
            raise ValueError(f"reorder: {rows.numel()} rows is not a multiple of {self.group}")
        sources = self._unless_same(
            torch.div(rows[:: self.group], self.group, rounding_mode="floor")
        )
        return self._build(lambda x: x.index_select(0, rows), sources, self.group)

    def select(self, rows: Tensor) -> TransformerState:
        """Any rows (N',), any order, repeats allowed: one source row per hypothesis (group 1)."""
        sources = self._unless_same(torch.div(rows, self.group, rounding_mode="floor"))
        return self._build(lambda x: x.index_select(0, rows), sources, 1)


class TransformerSeq2Seq(nn.Module):
    """Encoder-decoder Transformer; `step` is what the searchers call, `forward` teacher forcing."""

    def __init__(
        self, *, src_vocab: int, tgt_vocab: int, d_model: int = 256, heads: int = 4,
        ff_size: int = 1024, layers: int = 3, dropout: float = 0.1,
        attention_dropout: float = 0.0, pre_norm: bool = False, positions: str = "sinusoidal",
        max_positions: int = 256, share_embeddings: bool = True, tie_embeddings: bool = True,
        pad_id: int = PAD_ID, activation: str = "relu", scale_embeddings: bool = True,
        sinusoids: str = "interleaved", output_bias: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        if share_embeddings and src_vocab != tgt_vocab:
            raise ValueError(
                f"model.share_embeddings needs one joint vocabulary, but the source has "
                f"{src_vocab} entries and the target {tgt_vocab} (set data.joint_vocab: true "
                f"or model.share_embeddings: false)"
            )
        self.d_model, self.heads, self.n_layers = d_model, heads, layers
        self.tgt_embed = nn.Embedding(tgt_vocab, d_model, padding_idx=pad_id)
        self.src_embed = (
            self.tgt_embed if share_embeddings
            else nn.Embedding(src_vocab, d_model, padding_idx=pad_id)
        )  # fmt: skip
        self.positions = make_positions(positions, d_model=d_model, max_positions=max_positions,
                                        layout=sinusoids)  # fmt: skip
        self.embed_scale = math.sqrt(d_model) if scale_embeddings else 1.0
        self.dropout = Dropout(dropout)
        kw = dict(d_model=d_model, heads=heads, ff_size=ff_size, dropout=dropout,
                  attention_dropout=attention_dropout, pre_norm=pre_norm,
                  activation=activation)  # fmt: skip
        self.encoder_layers = nn.ModuleList(Block(**kw) for _ in range(layers))
        self.decoder_layers = nn.ModuleList(DecoderLayer(**kw) for _ in range(layers))
        # pre-norm leaves the residual stream un-normalised: one final LayerNorm per stack
        self.enc_norm = nn.LayerNorm(d_model) if pre_norm else nn.Identity()
        self.dec_norm = nn.LayerNorm(d_model) if pre_norm else nn.Identity()
        self.output = Linear(d_model, tgt_vocab, bias=False)
        # a fixed bias on the logits (Marian's final_logits_bias): a buffer, as in Marian,
        # saved with the weights but not trained
        self.output_bias: Tensor | None
        self.register_buffer("output_bias", torch.zeros(tgt_vocab) if output_bias else None)
        self._reset_parameters()
        if share_embeddings or tie_embeddings:
            self.output.weight = self.tgt_embed.weight

    def _reset_parameters(self) -> None:
        """Xavier-uniform for every matrix (Glorot & Bengio 2010); PAD embeddings stay zero."""
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        with torch.no_grad():
            self.tgt_embed.weight[self.tgt_embed.padding_idx].zero_()
            self.src_embed.weight[self.src_embed.padding_idx].zero_()

    def length_limit(self) -> int | None:
        """The most pieces (EOS / BOS not counted) a source or a target may have: learned
        positions stop at `model.max_positions`; None = any length (sinusoidal positions)."""
        if isinstance(self.positions, LearnedPositions):
            return self.positions.embed.num_embeddings - 1
        return None

    def _layer_index(self, layer: int) -> int:
        """`layer` (negative counts from the top) -> 0..L-1; ValueError when out of range."""
        if not -self.n_layers <= layer < self.n_layers:
            raise ValueError(
                f"layer {layer} out of range: the decoder has {self.n_layers} layers "
                f"({-self.n_layers}..{self.n_layers - 1})"
            )
        return layer % self.n_layers

    def check_options(self, options: DecodeOptions) -> None:
        """ValueError when `options.layer` or `options.head` is out of range."""
        self._layer_index(options.layer)
        if options.head is not None and not 0 <= options.head < self.heads:
            raise ValueError(
                f"head {options.head} out of range: layers have {self.heads} heads "
                f"(0..{self.heads - 1})"
            )

    def _weights_layer(self, options: DecodeOptions) -> int | None:
        """The decoder layer whose cross-attention weights are needed, or None (fast path)."""
        if not options.attention:
            return None
        self.check_options(options)
        return self._layer_index(options.layer)

    def _embed(self, embed: nn.Embedding, ids: Tensor, offset: int = 0) -> Tensor:
        """ids (B, T) at positions offset.. -> Dropout(E ids * sqrt(D) + PE) (B, T, D) (the
        scale is 1 with `scale_embeddings=False`)."""
        x = embed(ids) * self.embed_scale + self.positions(ids.size(1), offset)
        return self.dropout(x)

    def logits(self, h: Tensor, *, decoding: bool = False) -> Tensor:
        """Top decoder states (..., D) -> logits (..., V): W_o h (+ the fixed output bias;
        added in place where the dtypes agree, so no second (..., V) tensor is made).
        `decoding` (a step's (N, D) states): the product through `kernels.decode_linear`."""
        out = decode_linear(h, self.output.weight) if decoding else self.output(h)
        if self.output_bias is None:
            return out
        return out.add_(self.output_bias) if out.dtype == self.output_bias.dtype else (
            out + self.output_bias)  # fmt: skip

    def encode(self, src_ids: Tensor, src_mask: Tensor) -> EncoderOutput:
        """src_ids (B, S), src_mask (B, S) True = real token -> memory (B, S, D)."""
        x = self._embed(self.src_embed, src_ids)
        mask = src_mask.unsqueeze(1)  # (B, 1, S): every position may attend to real tokens
        for layer in self.encoder_layers:
            x = layer(x, mask)
        return EncoderOutput(memory=self.enc_norm(x), memory_mask=src_mask, final=None)

    def _decode(
        self, ids: Tensor, memory: Tensor, memory_mask: Tensor, *, offset: int = 0,
        caches: list[LayerCache] | None = None, weights_layer: int | None = None,
        group: int = 1,
    ) -> tuple[Tensor, Tensor | None, list[LayerCache]]:  # fmt: skip
        """ids (B, T) at positions offset.. -> top states (B, T, D) (the output layer's input),
        cross weights (B, H, T, S) of `weights_layer` (or None) and the new caches. `caches` hold
        positions < offset. With `group` > 1 (T = 1), memory and its mask have B / group rows,
        row n serving rows n * group .. n * group + group - 1 of ids."""
        x = self._embed(self.tgt_embed, ids, offset)  # (B, T, D)
        T = ids.size(1)
        # rows offset..offset+T-1 of the causal mask over all offset+T positions: (1, T, P+T)
        self_mask = None if T == 1 else causal_mask(offset + T, ids.device)[offset:].unsqueeze(0)
        mem_mask = memory_mask.unsqueeze(1)  # (B, 1, S)
        memory = autocast_input(memory)  # every layer's cross-attention reads it: cast once
        weights, new_caches = None, []
        for i, layer in enumerate(self.decoder_layers):
            x, w, cache = layer(
                x, memory, self_mask=self_mask, memory_mask=mem_mask,
                cache=None if caches is None else caches[i], need_weights=i == weights_layer,
                group=group,
            )  # fmt: skip
            weights = w if i == weights_layer else weights
            new_caches.append(cache)
        return self.dec_norm(x), weights, new_caches

    @staticmethod
    def _view(weights: Tensor | None, head: int | None) -> Tensor | None:
        """(B, H, T, S) -> (B, T, S): the chosen head, or the mean over heads."""
        if weights is None:
            return None
        return weights.mean(1) if head is None else weights[:, head]

    def forward(
        self, src_ids: Tensor, src_mask: Tensor, tgt_in: Tensor, select: Tensor | None = None,
        options: DecodeOptions | None = None, hidden: bool = False,
    ) -> tuple[Tensor, Tensor | None]:  # fmt: skip
        """Teacher forcing: logits (B, T, V) and, with `options.attention`, the cross-attention
        weights (B, T, S) of `options.layer` / `options.head` (else None: every layer then
        takes the fused fast path).

        `select` (B, T) bool: logits only at those positions, (N, V) in row-major order (the
        trainer passes the real target tokens, so the output layer and loss skip padding).
        `hidden`: the output layer's inputs instead of the logits (the fused output layer and
        loss of `atento.training.fused_output` apply `output_layer()` to them).
        """
        options = DEFAULT_OPTIONS if options is None else options
        layer = self._weights_layer(options)
        enc = self.encode(src_ids, src_mask)
        h, weights, _ = self._decode(tgt_in, enc.memory, src_mask, weights_layer=layer)
        h = h if select is None else h[select]
        return h if hidden else self.logits(h), self._view(weights, options.head)

    def output_layer(self) -> tuple[Tensor, Tensor | None]:
        """`logits(h)` = h W^T (+ b): the weight W (V, D) (the shared embedding when tied) and
        the fixed bias (V,) or None."""
        return self.output.weight, self.output_bias

    def attention_heads(
        self, src_ids: Tensor, src_mask: Tensor, tgt_in: Tensor, layer: int = -1
    ) -> Tensor:
        """Teacher-forced cross-attention weights of every head of `layer` (negative counts
        from the top): (B, H, T, S). ValueError when `layer` is out of range."""
        index = self._layer_index(layer)
        enc = self.encode(src_ids, src_mask)
        _, weights, _ = self._decode(tgt_in, enc.memory, src_mask, weights_layer=index)
        return weights

    def init_state(
        self, enc: EncoderOutput, options: DecodeOptions = DEFAULT_OPTIONS
    ) -> TransformerState:
        """Nothing decoded yet, one row per source (group 1); with `options.use_cache`,
        cross keys/values are projected once per layer. ValueError for out-of-range options."""
        self.check_options(options)
        caches = None
        if options.use_cache:
            caches = [
                LayerCache(None, layer.cross_attn.project_kv(enc.memory))
                for layer in self.decoder_layers
            ]
        empty = enc.memory_mask.new_zeros(enc.memory.size(0), 0, dtype=torch.long)  # (N, 0)
        return TransformerState(enc.memory, enc.memory_mask, empty, caches)

    def step(
        self, last_ids: Tensor, state: TransformerState, options: DecodeOptions = DEFAULT_OPTIONS
    ) -> tuple[Tensor, TransformerState, Tensor | None]:
        """One incremental step: last_ids (N,) -> log-probs (N, V) fp32, new state, and with
        `options.attention` the weights (N, S) of the chosen layer / head (else None).

        The new token sits at position t = tokens decoded so far (BOS is position 0). The
        cache is used when `options.use_cache` and the state holds one (`init_state` with it).
        """
        t = state.tgt_ids.size(1)
        layer = self._weights_layer(options)
        tgt_ids = torch.cat([state.tgt_ids, last_ids.unsqueeze(1)], dim=1)  # (N, t+1)
        if options.use_cache and state.caches is not None:
            h, weights, caches = self._decode(
                last_ids.unsqueeze(1), state.memory, state.memory_mask, offset=t,
                caches=state.caches, weights_layer=layer, group=state.group,
            )  # fmt: skip
        else:  # recompute the whole prefix: the uncached baseline
            memory, memory_mask = state.memory, state.memory_mask
            if state.group > 1:
                memory = memory.repeat_interleave(state.group, dim=0)
                memory_mask = memory_mask.repeat_interleave(state.group, dim=0)
            h, weights, _ = self._decode(tgt_ids, memory, memory_mask, weights_layer=layer)
            caches = None
        log_probs = log_softmax_fp32(self.logits(h[:, -1], decoding=True))  # (N, V)
        view = self._view(weights, options.head)
        new_state = TransformerState(state.memory, state.memory_mask, tgt_ids, caches, state.group)
        return log_probs, new_state, None if view is None else view[:, -1]
