"""The model protocol that search, analysis and serving rely on, shared by every model family.

A decoder is driven through three calls (`EncoderDecoder`): `encode` the source once,
`init_state` from its `EncoderOutput`, then `step` one token per hypothesis row at a time.
Per-call choices (return attention weights, which layer/head, use the KV cache) travel as a
`DecodeOptions` argument and are never stored on the model, so one model can serve any number
of concurrent callers with different settings.

The decoder state (`DecoderState`) changes its rows only through three explicit operations:

- `expand(k)`: repeat each row k times (row b -> rows b*k .. b*k+k-1): beam search's start,
  where the K beams of a sentence begin as copies of its one row;
- `reorder(rows)`: pick rows that keep the state's groups intact (each block of `group`
  consecutive new rows comes from one source sentence): beam search's reordering of beams
  within their sentences and its dropping of finished sentences;
- `select(rows)`: any rows, in any order, with repeats: greedy search's dropping of finished
  rows, exact search's children; it collapses any grouping.

A state may share data between the rows of a group (the Transformer keeps the source side once
per sentence, `atento.models.transformer.TransformerState`); the group comes from `expand`,
never from guessing at the pattern of an index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import torch
from torch import Tensor, nn


@dataclass
class EncoderOutput:
    """memory (B, S, D) annotations; memory_mask (B, S) True = real token; final state.

    `final` is the RNN encoder's final state (h or (h, c)); None for encoders without one
    (the Transformer's decoder starts from the memory alone).
    """

    memory: Tensor
    memory_mask: Tensor
    final: Any = None


@dataclass(frozen=True)
class DecodeOptions:
    """Per-call decoding choices; immutable, passed to `init_state`, `step` and `forward`.

    attention: return attention weights from `step` ((N, S)) and `forward` ((B, T, S)); off,
        `step` returns None and a Transformer takes its fused attention path everywhere.
    layer, head: which cross-attention a Transformer returns: decoder `layer` (negative counts
        from the top, -1 = the last) and `head` (None = the mean over heads). A model with one
        attention (the RNN) accepts only the defaults. Out of range: ValueError from the model.
    use_cache: Transformer key/value cache; False re-runs the decoder over the whole prefix at
        every step (the baseline of benchmarks/kv_cache.py; same log-probs).
    """

    attention: bool = False
    layer: int = -1
    head: int | None = None
    use_cache: bool = True


DEFAULT_OPTIONS = DecodeOptions()

S = TypeVar("S", bound="DecoderState")


class DecoderState(Protocol):
    """A decoder's state over N hypothesis rows (flattened: row b*K + k = beam k of sentence b).

    Each method returns a new state and leaves this one usable; tensors may be shared. A
    state that shares nothing between rows (the RNN's) implements `reorder` as `select`.
    """

    def expand(self: S, k: int) -> S:
        """Each row repeated k times: row b -> rows b*k .. b*k+k-1 (N -> N*k rows).

        Rows made by one expand form a group (with earlier groups: group *= k)."""
        ...

    def reorder(self: S, rows: Tensor) -> S:
        """Rows `rows` (N',) LongTensor of flat indices that keep groups intact: every block
        of `group` consecutive new rows reads one source, rows[j*group] // group for block j.

        Beam search: beams reordered within their sentences, finished sentences dropped."""
        ...

    def select(self: S, rows: Tensor) -> S:
        """Any rows (N',) LongTensor, in any order, repeats allowed; the result has no groups
        (one row per source)."""
        ...


class EncoderDecoder(Protocol):
    """A sequence-to-sequence model as search, analysis and serving see it (RNN, Transformer)."""

    def encode(self, src_ids: Tensor, src_mask: Tensor) -> EncoderOutput:
        """src_ids (B, S) LongTensor, src_mask (B, S) True = real token -> `EncoderOutput`."""
        ...

    def check_options(self, options: DecodeOptions) -> None:
        """ValueError (one line, naming the problem) when the model cannot honour `options`."""
        ...

    def init_state(
        self, enc: EncoderOutput, options: DecodeOptions = DEFAULT_OPTIONS
    ) -> DecoderState:
        """The `DecoderState` before the first step: one row per source (B rows)."""
        ...

    def step(
        self, last_ids: Tensor, state: DecoderState, options: DecodeOptions = DEFAULT_OPTIONS
    ) -> tuple[Tensor, DecoderState, Tensor | None]:
        """Feed last_ids (N,) (BOS first) -> log-probs (N, V) fp32, the new `DecoderState`,
        and this step's attention (N, S) when `options.attention`, else None."""
        ...

    def forward(
        self, src_ids: Tensor, src_mask: Tensor, tgt_in: Tensor, select: Tensor | None = None,
        options: DecodeOptions | None = None,
    ) -> tuple[Tensor, Tensor | None]:  # fmt: skip
        """Teacher forcing: tgt_in (B, T) = BOS + y -> logits (B, T, V), or (N, V) at the
        positions where `select` (B, T) bool is True (row-major); weights (B, T, S) when
        `options.attention`, else None. `options` None = `DecodeOptions()`."""
        ...


class DecoderOnly(Protocol):
    """Sketch for decoder-only language models (GPT): no encoder, and a prompt to prefill.

    Not implemented yet. The searchers drive it exactly as an `EncoderDecoder` (same
    `DecoderState` operations, same `step`); `prefill` is optional: without it, a caller
    feeds the prompt through `step` one token at a time (same log-probs, slower).
    """

    def init_state(self, batch_size: int, options: DecodeOptions = DEFAULT_OPTIONS) -> DecoderState:
        """An empty `DecoderState` of `batch_size` rows."""
        ...

    def prefill(
        self, prefix_ids: Tensor, state: DecoderState, options: DecodeOptions = DEFAULT_OPTIONS
    ) -> tuple[Tensor, DecoderState, Tensor | None]:
        """Feed a whole prompt prefix_ids (N, P) in one call (one causal pass that fills the
        KV cache) -> log-probs (N, V) of the token after it, the new state, None. Prompts of
        one length P; ragged prompts (a mask) are for the issue that implements this."""
        ...

    def step(
        self, last_ids: Tensor, state: DecoderState, options: DecodeOptions = DEFAULT_OPTIONS
    ) -> tuple[Tensor, DecoderState, Tensor | None]:
        """As `EncoderDecoder.step`, with no source to attend to (attention is None)."""
        ...


def require_eval(model: nn.Module, what: str) -> None:
    """ValueError unless `model` is in eval mode: decoding never switches modes itself, so
    that concurrent callers of one model cannot race on `model.training` (call model.eval()
    once, as `load_run` and the trainer's validation do)."""
    if model.training:
        raise ValueError(f"{what} needs the model in eval mode: call model.eval() once first")


def length_limit(model: nn.Module) -> int | None:
    """The most pieces (EOS / BOS not counted) `model` takes on either side, from its optional
    `length_limit()` method (a Transformer with learned positions); None = any length."""
    limit = getattr(model, "length_limit", None)
    return limit() if callable(limit) else None


def log_softmax_fp32(logits: Tensor) -> Tensor:
    """log_softmax over the last dimension, in fp32 (a decoding step's log-probs (N, V)).

    fp32 logits that need no gradient are overwritten in place: no second (N, V) tensor (at
    beam 5 x 32 sentences x 58k tokens, 37 MB a step that a fresh allocation page-faults
    through). The values are those of `F.log_softmax(logits, -1, dtype=torch.float32)`,
    which bf16 logits get (read once, written in fp32)."""
    if logits.dtype == torch.float32 and not logits.requires_grad:
        return torch.log_softmax(logits, dim=-1, out=logits)
    return torch.log_softmax(logits, dim=-1, dtype=torch.float32)
