"""The contract between the searchers and a model, and helpers shared by greedy and beam search.

Search never looks at the model family. A model side provides, per batch of N flattened rows:

- `state`: an `atento.models.base.DecoderState` (here `SearchState`): `expand(k)` repeats each
  row k times (beam search's start, B -> B*K rows), `reorder(rows)` picks rows that keep each
  sentence's K beams together (beam search: reorder beams, drop finished sentences), and
  `select(rows)` picks any rows (greedy: drop finished sentences; exact search).
- `step_fn(last_ids (N,), state) -> (log_probs (N, V), new_state, attention (N, S) | None)`:
  log_probs are already log_softmax-ed; attention is this step's source attention, or None.
  Decoding options (`DecodeOptions`) are bound by the caller, e.g.
  `functools.partial(model.step, options=options)`; the searchers never see them.

PAD and BOS are never generated. The unknown-word token is generated unless the caller passes
its id as `unk_id` (a config's `search.ban_unk`; the searchers know nothing of tasks); a
`SearchStats` passed as `stats` then counts the steps at which UNK would have won.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from atento.errors import AtentoError
from atento.models.base import DecoderState as SearchState

__all__ = [
    "SearchState", "SearchStats", "StepFn", "ban_specials", "ban_unk", "banned_ids",
    "max_lengths", "search_device", "top_k",
]  # fmt: skip

StepFn = Callable[[Tensor, SearchState], tuple[Tensor, SearchState, Tensor | None]]


@dataclass
class SearchStats:
    """Counts that searches add to as they decode; one object may be shared by the batches of
    a corpus, also on several threads.

    unk_banned_steps: steps at which the banned UNK (`unk_id`) would have been the best next
    token: per sentence and step in greedy search, the sentence's best extension in beam search.
    """

    unk_banned_steps: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add_unk(self, steps: int) -> None:
        with self._lock:
            self.unk_banned_steps += steps


def search_device(state: SearchState, device: torch.device | str | None) -> torch.device:
    """The device a search keeps its ids and indices on: `device`, else `state.device` when it
    has one, else CPU. (`runtime.search_device` is the other one: a configured device name.)"""
    if device is None:
        device = getattr(state, "device", None)
    return torch.device(device) if device is not None else torch.device("cpu")


def max_lengths(max_len: int | Tensor, batch_size: int, device: torch.device) -> Tensor:
    """Per-sentence maximum number of generated tokens (EOS included) as a LongTensor (B,)."""
    if isinstance(max_len, Tensor):
        lens = max_len.to(device=device, dtype=torch.long).reshape(-1)
        if lens.numel() != batch_size:
            raise ValueError(f"max_len has {lens.numel()} entries for a batch of {batch_size}")
    else:
        lens = torch.full((batch_size,), int(max_len), dtype=torch.long, device=device)
    if batch_size and int(lens.min()) < 1:
        raise AtentoError(f"maximum output length must be >= 1, got {int(lens.min())}")
    return lens


def first_ids(
    start_ids: Tensor | None, bos_id: int, batch_size: int, device: torch.device, *, repeat: int = 1
) -> Tensor:
    """The ids fed at a search's first step, (batch_size * repeat,), each sentence's `repeat`
    times in a row: BOS, or `start_ids` (batch_size,) (a language model: each prompt's last)."""
    if start_ids is None:
        return torch.full((batch_size * repeat,), bos_id, dtype=torch.long, device=device)
    ids = start_ids.to(device)
    return ids.repeat_interleave(repeat) if repeat > 1 else ids


def banned_ids(vocab_size: int, *, pad_id: int, bos_id: int, eos_id: int) -> list[int]:
    """PAD and BOS: never output (BOS is allowed when it is also the EOS id)."""
    return sorted(i for i in {pad_id, bos_id} if i != eos_id and 0 <= i < vocab_size)


def top_k(x: Tensor, k: int, *, block: int = 64) -> tuple[Tensor, Tensor]:
    """`x.topk(k, dim=1)` (values best first, and their columns) for wide rows x (A, M).

    torch's CPU top-k costs ~3 ns per element on a beam's K*V scores; this reads them once for
    the maxima of blocks of `block` columns (a vectorised reduction), keeps the k blocks with
    the highest maxima (every one of the k best values lies in one of them: k blocks hold at
    least k values >= the k-th highest block maximum, which all other blocks stay below) and
    takes the top k of those k * block values. Equal to `x.topk(k, dim=1)` up to the order of
    tied values.
    """
    A, M = x.shape
    C = M // block
    if 4 * k >= C:  # narrow rows: the plain top-k is as cheap
        return x.topk(k, dim=1)
    blocks = x[:, : C * block].view(A, C, block)  # (A, C, block)
    best = blocks.amax(dim=2).topk(k, dim=1).indices  # (A, k) block numbers
    picked = blocks.gather(1, best[:, :, None].expand(A, k, block)).view(A, k * block)
    columns = (best[:, :, None] * block + torch.arange(block, device=x.device)).view(A, -1)
    if C * block < M:  # the last M mod block columns join the candidates as they are
        picked = torch.cat([picked, x[:, C * block :]], dim=1)
        tail = torch.arange(C * block, M, device=x.device).expand(A, -1)
        columns = torch.cat([columns, tail], dim=1)
    values, pos = picked.topk(k, dim=1)
    return values, columns.gather(1, pos)


def ban_specials(log_probs: Tensor, *, pad_id: int, bos_id: int, eos_id: int) -> Tensor:
    """(N, V) float log-probs with PAD and BOS made impossible (never output); a copy.

    BOS is left alone when it is also the EOS id (one shared boundary token).
    """
    banned = banned_ids(log_probs.size(-1), pad_id=pad_id, bos_id=bos_id, eos_id=eos_id)
    log_probs = log_probs.float()
    if not banned:
        return log_probs
    index = torch.tensor(banned, device=log_probs.device)
    return log_probs.index_fill(-1, index, float("-inf"))


def ban_unk(log_probs: Tensor, unk_id: int, stats: SearchStats | None = None) -> Tensor:
    """(N, V) float log-probs with UNK made impossible (a copy); `stats` counts the rows in
    which it was the best token."""
    if stats is not None:
        stats.add_unk(int((log_probs.argmax(dim=-1) == unk_id).sum()))
    return log_probs.index_fill(-1, torch.tensor([unk_id], device=log_probs.device), float("-inf"))
