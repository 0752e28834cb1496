"""Padded batches with the teacher-forcing shift, and a length-bucketing token-budget sampler.

Conventions (one place for all of them):
- sources get EOS appended: `src_ids = x + [EOS]` (an end marker for the encoder);
- the decoder reads `tgt_in = [BOS] + y` and predicts `tgt_out = y + [EOS]`;
- padding is PAD_ID = 0 on the right, and every mask is True for real tokens.

    sampler = TokenBatchSampler(pair_lengths(pairs), batch_tokens=3000, shuffle=True, seed=1)
    sampler.set_epoch(epoch)
    for idx in sampler:
        batch = collate([pairs[i] for i in idx]).to(device)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Sampler

from atento.data.vocab import BOS_ID, EOS_ID, PAD_ID

IdPair = tuple[list[int], list[int]]


class Movable:
    """A batch dataclass whose `to(device)` moves every tensor field (the others are kept)."""

    def to(self, device: torch.device | str, non_blocking: bool = False):
        moved = {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]
        for name, value in moved.items():
            if isinstance(value, Tensor):
                moved[name] = value.to(device, non_blocking=non_blocking)
        return type(self)(**moved)


@dataclass
class Batch(Movable):
    """A padded batch of B sentence pairs. S and T include the appended EOS / prepended BOS.

    src_ids: (B, S) long, source ids + EOS, PAD on the right
    src_mask: (B, S) bool, True = real token (EOS included)
    tgt_in: (B, T) long, BOS + target ids (decoder input under teacher forcing)
    tgt_out: (B, T) long, target ids + EOS (what the decoder must predict)
    tgt_mask: (B, T) bool, True where tgt_out is a real token (same positions as tgt_in's)
    n_tgt_tokens: number of real tokens in tgt_out (the loss normaliser)
    """

    src_ids: Tensor
    src_mask: Tensor
    tgt_in: Tensor
    tgt_out: Tensor
    tgt_mask: Tensor
    n_tgt_tokens: int

    @property
    def sources(self) -> tuple[Tensor, Tensor]:
        """What the model encodes: (src_ids, src_mask)."""
        return self.src_ids, self.src_mask

    @property
    def size(self) -> int:
        """B, the number of sentence pairs."""
        return self.src_ids.size(0)


def _pad(seqs: Sequence[Sequence[int]], pad_id: int = PAD_ID) -> tuple[Tensor, Tensor]:
    """Right-pad id lists with `pad_id` -> ids (N, L) long and mask (N, L) bool."""
    width = max((len(s) for s in seqs), default=0)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    for row, s in enumerate(seqs):
        if s:
            ids[row, : len(s)] = torch.as_tensor(s, dtype=torch.long)
    lengths = torch.as_tensor([len(s) for s in seqs], dtype=torch.long)
    mask = torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)  # (N, L)
    return ids, mask


def collate_sources(
    src_list: Sequence[Sequence[int]], *, eos_id: int = EOS_ID
) -> tuple[Tensor, Tensor]:
    """Sources for decoding: (src_ids (B, S) long with `eos_id` appended, src_mask (B, S)
    bool)."""
    return _pad([[*s, eos_id] for s in src_list])


def collate_features(sources: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """Decoding sources of a captioning run: region features (P, C) each -> (B, P, C) fp32
    and the all-true mask (B, P) (every region is real)."""
    features = torch.stack(list(sources)).float()
    return features, torch.ones(features.shape[:2], dtype=torch.bool)


def collate(
    pairs: Sequence[IdPair], *, src_eos: int = EOS_ID, bos_id: int = BOS_ID, eos_id: int = EOS_ID
) -> Batch:
    """Pad (source ids, target ids) pairs, given without BOS / EOS, into a `Batch`: sources end
    with `src_eos`, the decoder reads `bos_id` + y and predicts y + `eos_id` (the tokenizers'
    own ids; atento's tokenizers use the defaults)."""
    src_ids, src_mask = collate_sources([s for s, _ in pairs], eos_id=src_eos)
    tgt_in, _ = _pad([[bos_id, *t] for _, t in pairs])
    tgt_out, tgt_mask = _pad([[*t, eos_id] for _, t in pairs])
    return Batch(src_ids, src_mask, tgt_in, tgt_out, tgt_mask, int(tgt_mask.sum()))


def pad_rows(rows: Sequence[np.ndarray], *, first: int | None, last: int | None):
    """Rows of ids (numpy, any integer type) -> ids (N, L) long with `first` before and `last`
    after each row (None: nothing), PAD on the right, and mask (N, L) bool."""
    extra = (first is not None) + (last is not None)
    lengths = np.fromiter((len(r) + extra for r in rows), np.int64, count=len(rows))
    width = int(lengths.max(initial=0))
    ids = np.full((len(rows), width), PAD_ID, dtype=np.int64)
    start = int(first is not None)
    for k, r in enumerate(rows):
        ids[k, start : start + len(r)] = r
    rows_at = np.arange(len(rows))
    if first is not None:
        ids[:, 0] = first
    if last is not None:
        ids[rows_at, lengths - 1] = last
    mask = np.arange(width)[None, :] < lengths[:, None]
    return torch.from_numpy(ids), torch.from_numpy(mask)


def collate_arrays(
    src_rows: Sequence[np.ndarray], tgt_rows: Sequence[np.ndarray], *, src_eos: int = EOS_ID,
    bos_id: int = BOS_ID, eos_id: int = EOS_ID,
) -> Batch:  # fmt: skip
    """`collate` of pairs given as numpy rows (a corpus store's memory-mapped ids): the same
    `Batch` with the same special ids, built without Python lists."""
    src_ids, src_mask = pad_rows(src_rows, first=None, last=src_eos)
    tgt_in, _ = pad_rows(tgt_rows, first=bos_id, last=None)
    tgt_out, tgt_mask = pad_rows(tgt_rows, first=None, last=eos_id)
    return Batch(src_ids, src_mask, tgt_in, tgt_out, tgt_mask, int(tgt_mask.sum()))


def pair_lengths(pairs: Sequence[IdPair]) -> list[tuple[int, int]]:
    """(source length, target length) of each pair, without the EOS / BOS that batching adds."""
    return [(len(s), len(t)) for s, t in pairs]


class TokenBatchSampler(Sampler[list[int]]):
    """Batches of example indices that fit a padded-token budget, bucketed by length.

    Examples are sorted by (target length, source length) so that a batch holds sentences
    of similar length; with `shuffle` ties are broken at random and the batch order is
    shuffled, both from (seed, epoch) only, so an epoch's batches can be rebuilt exactly
    when resuming (`batches(epoch)[k:]`, or `set_epoch(epoch, skip=k)`).

    A batch of n examples costs n * (longest target + 1) padded target tokens (the +1 is EOS)
    and likewise for sources; both stay <= `batch_tokens`, except that an example too long
    for the budget on its own still forms a batch of one. `max_sentences > 0` also caps n.

    Args:
        lengths: (source length, target length) per example, without EOS / BOS: a list of
            pairs or an (N, 2) integer array (a corpus store's, `ParallelData.lengths()`).
    """

    def __init__(
        self,
        lengths: Sequence[tuple[int, int]],
        *,
        batch_tokens: int,
        shuffle: bool,
        seed: int,
        max_sentences: int = 0,
    ) -> None:
        super().__init__()
        if batch_tokens <= 0:
            raise ValueError("batch_tokens must be positive")
        arr = np.asarray(lengths).reshape(-1, 2)  # a list or an (N, 2) array
        # int32: 8 bytes an example (2.9 M pairs: 23 MB); no sentence is 2^31 pieces long
        self.src_lens = (arr[:, 0] + 1).astype(np.int32)  # + EOS
        self.tgt_lens = (arr[:, 1] + 1).astype(np.int32)  # + EOS (tgt_out) / BOS (tgt_in)
        self.batch_tokens = batch_tokens
        self.shuffle = shuffle
        self.seed = seed
        self.max_sentences = max_sentences
        self.epoch = 0
        self.skip = 0
        self._n_batches: int | None = None

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select the epoch's order for iteration, leaving out its first `skip` batches."""
        self.epoch = epoch
        self.skip = skip

    def _sorted_indices(self, epoch: int) -> np.ndarray:
        # sorted by (target length, source length), ties in order (stable): one int64 key
        # sorts as lexsort would, in about half the time
        n = len(self.tgt_lens)
        key = (self.tgt_lens.astype(np.int64) << 32) | self.src_lens
        if not self.shuffle:
            return np.argsort(key, kind="stable")
        perm = _rng(self.seed, epoch).permutation(n)
        return perm[np.argsort(key[perm], kind="stable")]  # ties in random order

    def _chunk(self, src: np.ndarray, tgt: np.ndarray) -> np.ndarray:
        """Batch bounds over examples in sorted order with lengths `src`, `tgt`: greedily, a
        batch takes the next example while n * max length stays within the budget on both
        sides (and n <= max_sentences); an example too long alone still makes a batch.
        Returns the N_batches + 1 positions where batches start (the last = len)."""
        n = len(tgt)
        budget, cap = self.batch_tokens, self.max_sentences
        bounds = [0]
        p = 0
        while p < n:
            # the batch from p cannot outgrow this window: (budget // longest + 1) examples
            # already exceed the budget (2 at least: a too-long first example is alone)
            width = max(budget // int(max(src[p], tgt[p])) + 1, 2)
            if cap > 0:
                width = min(width, cap + 1)
            stop = min(p + width, n)
            count = np.arange(1, stop - p + 1)
            over = (count * np.maximum.accumulate(tgt[p:stop]) > budget) | (
                count * np.maximum.accumulate(src[p:stop]) > budget
            )
            if cap > 0:
                over |= count > cap
            over[0] = False  # the first example always joins
            first = int(over.argmax()) if over.any() else stop - p
            p += first
            bounds.append(p)
        return np.asarray(bounds, dtype=np.int64)

    def batches(self, epoch: int) -> BatchPlan:
        """All batches of `epoch`, in order; the same (seed, epoch) gives the same plan."""
        order = self._sorted_indices(epoch)
        bounds = self._chunk(self.src_lens[order], self.tgt_lens[order])
        starts, ends = bounds[:-1], bounds[1:]
        if self.shuffle:
            perm = _rng(self.seed, epoch, 1).permutation(len(starts))
            starts, ends = starts[perm], ends[perm]
        return BatchPlan(order, starts, ends)

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches(self.epoch)[self.skip :]

    def __len__(self) -> int:
        """Batches left to yield in the current epoch (the batch count is the same every epoch,
        since it depends only on the sorted lengths)."""
        if self._n_batches is None:
            self._n_batches = len(self.batches(0))
        return max(self._n_batches - self.skip, 0)


class BatchPlan(Sequence[list[int]]):
    """An epoch's batches as numpy arrays, not lists: batch k is `order[starts[k]:ends[k]]`
    (example indices). Indexing gives a batch as a list; slicing and `+` give plans, so
    resuming (`plan[k:]`) and dealing to ranks (`distributed.deal`) never build per-example
    Python objects. 16 bytes per example, plus 16 per batch."""

    def __init__(self, order: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> None:
        self.order, self.starts, self.ends = order, starts, ends

    @classmethod
    def fixed(cls, items: np.ndarray, size: int) -> BatchPlan:
        """Consecutive batches of `size` items (a last, shorter one is left out)."""
        starts = np.arange(0, len(items) - size + 1, size, dtype=np.int64)
        return cls(np.asarray(items), starts, starts + size)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, k):  # type: ignore[override]
        if isinstance(k, slice):
            return BatchPlan(self.order, self.starts[k], self.ends[k])
        return self.order[self.starts[k] : self.ends[k]].tolist()

    def __add__(self, other: BatchPlan) -> BatchPlan:
        if not isinstance(other, BatchPlan) or other.order is not self.order:
            return NotImplemented
        return BatchPlan(self.order, np.concatenate([self.starts, other.starts]),
                         np.concatenate([self.ends, other.ends]))  # fmt: skip

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, (BatchPlan, list)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]


def _rng(*keys: int) -> np.random.Generator:
    """A generator seeded by integers of any sign (SeedSequence wants non-negative ones)."""
    return np.random.default_rng([k % 2**63 for k in keys])
