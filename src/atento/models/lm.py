"""The text Transformer: a decoder-only language model (GPT, Radford et al. 2018/2019) and,
with `causal=False`, an encoder-only stack (BERT-style); `models.text` builds both (`model.arch:
gpt`, `bert`) and `models.classifier` puts a sentence classifier on it.

Both stack Transformer blocks (`atento.nn.transformer_layers.Block`, pre-norm, the same
multi-head attention and KV cache as the translation Transformer's encoder) over token +
position embeddings, with a final LayerNorm and an output layer tied to the token embedding:

    h_0 = Dropout(E x + P)              (no sqrt(D) scaling, as GPT)
    h_l = Block_l(h_{l-1}, mask)        mask: causal (GPT) and/or the real tokens
    logits = LayerNorm(h_L) E^T

`hidden(ids, cache=...)` takes only the new positions when a cache holds the earlier ones:
one call with a whole prompt fills the cache (prefill), then one call per token (the KV
cache: O(T) work per new token instead of re-reading the whole sequence).
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor, nn

from atento.attention.multihead import KVCache
from atento.data.vocab import PAD_ID
from atento.kernels import Linear, decode_linear
from atento.models.base import DEFAULT_OPTIONS, DecodeOptions, log_softmax_fp32
from atento.models.lm_state import LMState
from atento.nn.dropout import Dropout
from atento.nn.feedforward import activation_fn
from atento.nn.positional import LearnedPositions, make_positions
from atento.nn.transformer_layers import Block

Cache = list[KVCache]  # one KVCache per layer


class HeadTransform(nn.Module):
    """BERT's prediction-head transform before the tied output: LayerNorm(act(W h + b))."""

    def __init__(self, d_model: int, *, activation: str, eps: float) -> None:
        super().__init__()
        self.dense = Linear(d_model, d_model)
        self.act = activation_fn(activation)
        self.norm = nn.LayerNorm(d_model, eps=eps)

    def forward(self, h: Tensor) -> Tensor:
        return self.norm(self.act(self.dense(h)))


class TextTransformer(nn.Module):
    """Token + position embeddings, pre-norm layers, final norm, tied output (module doc).

    The options that imported models need (`models.text` documents their config keys; the
    defaults are atento's own stack): `pre_norm=False` (post-norm layers and no final norm,
    BERT), `activation` (`nn.feedforward.ACTIVATIONS`), `norm_eps`, `embed_norm` (LayerNorm
    after the embedding sum, BERT), `type_vocab` (token-type embeddings, of which every
    position reads type 0: one sentence), `head_transform` (dense + activation + LayerNorm
    before the tied output, BERT's MLM head), `output_bias`, and `pooler` (dense + tanh on a
    pooled state, which the sentence classifier reads; BERT's pooler lives in the body so
    that it travels with `init_from`).
    """

    def __init__(
        self, *, vocab_size: int, d_model: int, heads: int, layers: int, ff_size: int,
        dropout: float = 0.0, attention_dropout: float = 0.0, context: int = 64,
        positions: str = "learned", causal: bool = True, pre_norm: bool = True,
        activation: str = "relu", norm_eps: float = 1e-5, embed_norm: bool = False,
        type_vocab: int = 0, head_transform: bool = False, output_bias: bool = False,
        pooler: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        self.causal, self.context, self.heads, self.n_layers = causal, context, heads, layers
        self.embed = nn.Embedding(vocab_size, d_model)
        self.positions = make_positions(positions, d_model=d_model, max_positions=context)
        self.types = nn.Embedding(type_vocab, d_model) if type_vocab else None
        self.embed_norm = nn.LayerNorm(d_model, eps=norm_eps) if embed_norm else None
        self.dropout = Dropout(dropout)
        self.layers = nn.ModuleList(
            Block(
                d_model=d_model,
                heads=heads,
                ff_size=ff_size,
                dropout=dropout,
                attention_dropout=attention_dropout,
                pre_norm=pre_norm,
                activation=activation,
                norm_eps=norm_eps,
            )  # fmt: skip
            for _ in range(layers)
        )
        # pre-norm needs a final norm; post-norm layers end with one
        self.norm = nn.LayerNorm(d_model, eps=norm_eps) if pre_norm else nn.Identity()
        self.transform = (HeadTransform(d_model, activation=activation, eps=norm_eps)
                          if head_transform else None)  # fmt: skip
        self.pooler = Linear(d_model, d_model) if pooler else None
        self.output = Linear(d_model, vocab_size, bias=output_bias)
        self._reset_parameters()
        self.output.weight = self.embed.weight

    def _reset_parameters(self) -> None:
        """GPT-2's initialisation: N(0, 0.02) for matrices and embeddings, zero biases."""
        for name, p in self.named_parameters():
            if p.dim() > 1:
                nn.init.normal_(p, std=0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def embed_tokens(self, ids: Tensor, pos: Tensor) -> Tensor:
        """Token embeddings of ids (B, T) or (B,) plus positions `pos` (broadcastable), type
        0 and the embedding norm when the model has them; no dropout."""
        x = self.embed(ids) + pos
        if self.types is not None:
            x = x + self.types.weight[0]
        return x if self.embed_norm is None else self.embed_norm(x)

    def pool(self, v: Tensor) -> Tensor:
        """A pooled state (B, D) through the pooler, tanh(W v + b), when the model has one."""
        return v if self.pooler is None else torch.tanh(self.pooler(v))

    def length_limit(self) -> int | None:
        """The most tokens the model reads at once (learned positions); None = any."""
        return self.context if isinstance(self.positions, LearnedPositions) else None

    def layer_index(self, layer: int) -> int:
        """`layer` (negative counts from the top) -> 0..L-1; ValueError when out of range."""
        if not -self.n_layers <= layer < self.n_layers:
            raise ValueError(
                f"layer {layer} out of range: the model has {self.n_layers} layers "
                f"({-self.n_layers}..{self.n_layers - 1})"
            )
        return layer % self.n_layers

    def hidden(
        self, ids: Tensor, *, pad_mask: Tensor | None = None, positions: Tensor | None = None,
        cache: Cache | None = None, need_weights: bool = False, layer: int = -1,
    ) -> tuple[Tensor, Tensor | None, Cache]:  # fmt: skip
        """ids (B, T) -> final states (B, T, D), the self-attention weights (B, H, T, S) of
        `layer` when `need_weights`, and the new cache.

        `cache` holds the earlier positions (ids are the new ones after them); `pad_mask`
        (B, S) True = real token covers all S = cached + new positions; `positions` (B, T)
        gives each row its own positions (left-padded prompts), default past..past+T-1.
        """
        T = ids.size(1)
        past = cache[0].length if cache else 0
        # (T, D) shared by every row, or (B, T, D) per row
        pos = self.positions(T, past) if positions is None else self.positions.at(positions)
        x = self.dropout(self.embed_tokens(ids, pos))
        mask = self._mask(T, past, pad_mask, ids.device)
        want = self.layer_index(layer) if need_weights else -1
        weights, new_cache = None, []
        for i, block in enumerate(self.layers):
            x, w, kv = block.attend(
                x, mask, cache=cache[i] if cache else None, need_weights=i == want
            )
            new_cache.append(kv)
            if i == want:
                weights = w
        return self.norm(x), weights, new_cache

    def step_hidden(
        self, ids: Tensor, cache: Cache, *, pad_mask: Tensor | None = None,
        positions: Tensor | None = None,
    ) -> tuple[Tensor, Cache]:  # fmt: skip
        """One new token per row at inference, after the positions in `cache`: ids (B,) ->
        final states (B, D) and the new cache. Equals `hidden(ids[:, None], cache=cache, ...)`
        (pad_mask (B, S + 1), positions (B,) as there) in fewer operations: the KV-cached
        decoding step, where per-operation overhead, not arithmetic, is the cost."""
        past = cache[0].length
        pos = self.positions(1, past) if positions is None else self.positions.at(positions)
        x = self.embed_tokens(ids, pos)  # (B, D); dropout is off at inference
        new_cache = []
        for block, kv in zip(self.layers, cache, strict=True):
            x, kv = block.step(x, kv, pad_mask)
            new_cache.append(kv)
        return self.norm(x), new_cache

    # ------------------------------------------------ the searchers' contract (search/step.py)
    def check_options(self, options: DecodeOptions) -> None:
        if options.attention:
            raise ValueError("a language model's decoding returns no source attention")

    def init_state(
        self, prompts: list[list[int]], options: DecodeOptions = DEFAULT_OPTIONS, *,
        pad_id: int = PAD_ID,
    ) -> LMState:  # fmt: skip
        """The state before the first step: each prompt but its last token, which the search
        feeds first (`start_ids`); the first step then reads each whole prompt in one pass."""
        if any(len(p) == 0 for p in prompts):
            raise ValueError("every prompt needs at least one token")
        limit = self.length_limit()
        if limit is not None and max(len(p) for p in prompts) > limit:
            raise ValueError(f"a prompt of {max(len(p) for p in prompts)} tokens is longer "
                             f"than the context {limit}")  # fmt: skip
        return LMState.start(prompts, pad_id=pad_id, device=self.embed.weight.device)

    def step(
        self, last_ids: Tensor, state: LMState, options: DecodeOptions = DEFAULT_OPTIONS
    ) -> tuple[Tensor, LMState, None]:
        """Feed last_ids (N,) -> log-probs (N, V) fp32 of the next token, the new state, None.
        Re-reads the visible text (one pass) when nothing is cached, without the cache, or
        when the window slides (models/lm_state.py); else one cached step."""
        state = state.appended(last_ids)
        limit = self.length_limit()
        if limit is not None and state.longest > limit:
            state = state.window(limit // 2)
        if state.cache is None or not options.use_cache:
            mask, positions = state.mask_and_positions()
            h, _, cache = self.hidden(state.ids, pad_mask=mask, positions=positions)
            h, state = h[:, -1], replace(state, cache=cache, pad_mask=mask)
        else:
            mask = positions = None
            if state.lengths is not None:  # left-padded rows: each its own next position
                positions = state.lengths - 1
                mask = torch.cat([state.pad_mask, state.pad_mask.new_ones(len(last_ids), 1)], 1)
            h, cache = self.step_hidden(last_ids, state.cache, pad_mask=mask, positions=positions)
            state = replace(state, cache=cache, pad_mask=mask)
        return log_softmax_fp32(self.logits(h, decoding=True)), state, None

    def _mask(
        self, T: int, past: int, pad_mask: Tensor | None, device: torch.device
    ) -> Tensor | None:
        """(1|B, T, past + T) True = may attend: earlier positions (causal) that are real
        tokens; a position always sees itself, so a padding row never has nothing to see."""
        S = past + T
        if pad_mask is None and (not self.causal or T == 1):
            return None  # nothing to hide: no padding, and one new query sees every position
        if self.causal:
            mask = torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=past)[None]
        else:
            mask = torch.ones(1, T, S, dtype=torch.bool, device=device)
        if pad_mask is not None:
            itself = torch.zeros(T, S, dtype=torch.bool, device=device)
            itself[torch.arange(T), past + torch.arange(T)] = True
            mask = mask & (pad_mask[:, None, :] | itself[None])
        return mask

    @torch.no_grad()
    def self_attention(self, ids: list[int], *, layer: int = -1, head: int | None = None) -> Tensor:
        """The self-attention weights (H, T, T) of `layer` over one sequence (rows: positions,
        columns: the positions they attend to). ValueError for a layer or head out of range."""
        idx = self.layer_index(layer)
        if head is not None and not 0 <= head < self.heads:
            raise ValueError(
                f"head {head} out of range: the model has {self.heads} heads (0..{self.heads - 1})"
            )
        device = self.embed.weight.device
        x = torch.tensor([ids], dtype=torch.long, device=device)
        return self.hidden(x, need_weights=True, layer=idx)[1][0].float().cpu()

    def logits(self, h: Tensor, *, decoding: bool = False) -> Tensor:
        """States (..., D) -> logits (..., V) through the head transform (when the model has
        one) and the tied output layer; `decoding` (a step's (N, D) states): the product
        through `atento.kernels.decode_linear`."""
        h = h if self.transform is None else self.transform(h)
        if decoding:
            return decode_linear(h, self.output.weight, self.output.bias)
        return self.output(h)

    def forward(
        self, ids: Tensor, *, pad_mask: Tensor | None = None, select: Tensor | None = None
    ) -> Tensor:
        """Teacher forcing: logits (B, T, V), or (N, V) at the positions where `select`
        (B, T) bool is True (the output layer then skips the others)."""
        h = self.hidden(ids, pad_mask=pad_mask)[0]
        return self.logits(h[select] if select is not None else h)
