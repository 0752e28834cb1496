"""Batches (masks, BOS / EOS shift) and the token-budget bucketing sampler."""

from __future__ import annotations

import random

import torch

from atento.data.batching import (
    TokenBatchSampler,
    collate,
    collate_sources,
    pair_lengths,
)
from atento.data.vocab import BOS_ID, EOS_ID, PAD_ID


def test_collate_masks_and_shift() -> None:
    pairs = [([5, 6, 7], [8, 9]), ([10], [11, 12, 13, 14])]
    b = collate(pairs)
    assert b.src_ids.tolist() == [[5, 6, 7, EOS_ID], [10, EOS_ID, PAD_ID, PAD_ID]]
    assert b.src_mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert b.tgt_in.tolist() == [[BOS_ID, 8, 9, PAD_ID, PAD_ID], [BOS_ID, 11, 12, 13, 14]]
    assert b.tgt_out.tolist() == [[8, 9, EOS_ID, PAD_ID, PAD_ID], [11, 12, 13, 14, EOS_ID]]
    assert b.tgt_mask.tolist() == [[True] * 3 + [False] * 2, [True] * 5]
    assert b.n_tgt_tokens == 8 and b.size == 2
    assert b.src_ids.dtype == torch.long and b.src_mask.dtype == torch.bool
    assert torch.equal(
        b.tgt_in[:, 1:][b.tgt_mask[:, 1:]], b.tgt_out[b.tgt_mask & (b.tgt_out != EOS_ID)]
    )
    moved = b.to("cpu")
    assert torch.equal(moved.tgt_out, b.tgt_out) and moved.n_tgt_tokens == 8
    ids, mask = collate_sources([[4], [4, 5, 6]])
    assert ids.tolist() == [[4, EOS_ID, 0, 0], [4, 5, 6, EOS_ID]]
    assert mask.sum(1).tolist() == [2, 4]


def _lengths(n: int, seed: int = 0) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    return [(rng.randint(1, 40), rng.randint(1, 40)) for _ in range(n)] + [(300, 5), (2, 500)]


def test_sampler_covers_each_index_once_within_budget() -> None:
    lengths = _lengths(1000)
    sampler = TokenBatchSampler(lengths, batch_tokens=400, shuffle=True, seed=1)
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        flat = sorted(i for b in batches for i in b)
        assert flat == list(range(len(lengths)))
        for b in batches:
            max_t = max(lengths[i][1] for i in b) + 1
            max_s = max(lengths[i][0] for i in b) + 1
            assert len(b) == 1 or (len(b) * max_t <= 400 and len(b) * max_s <= 400)
    singles = [b for b in sampler.batches(0) if len(b) == 1]
    assert [1000] in singles and [1001] in singles  # over-long examples alone


def test_sampler_buckets_similar_lengths() -> None:
    lengths = _lengths(2000)
    sampler = TokenBatchSampler(lengths, batch_tokens=600, shuffle=True, seed=3)
    batches = sampler.batches(0)
    pad = sum(len(b) * (max(lengths[i][1] for i in b) + 1) for b in batches)
    real = sum(t + 1 for _, t in lengths)
    assert real / pad > 0.9  # target padding is small after sorting by length


def test_sampler_is_deterministic_and_resumable() -> None:
    lengths = _lengths(500)
    a = TokenBatchSampler(lengths, batch_tokens=300, shuffle=True, seed=4)
    b = TokenBatchSampler(lengths, batch_tokens=300, shuffle=True, seed=4)
    assert a.batches(2) == b.batches(2)
    assert a.batches(2) != a.batches(3)
    assert a.batches(2) != TokenBatchSampler(
        lengths, batch_tokens=300, shuffle=True, seed=5
    ).batches(2)
    a.set_epoch(2, skip=3)
    assert list(a) == b.batches(2)[3:]
    assert len(a) == len(b.batches(2)) - 3


def test_sampler_without_shuffle_is_sorted() -> None:
    pairs = [([1] * s, [1] * t) for s, t in _lengths(200, seed=9)]
    sampler = TokenBatchSampler(pair_lengths(pairs), batch_tokens=200, shuffle=False, seed=0)
    assert sampler.batches(0) == sampler.batches(1)
    flat = [i for b in sampler for i in b]
    keys = [(len(pairs[i][1]), len(pairs[i][0])) for i in flat]
    assert keys == sorted(keys)
    capped = TokenBatchSampler(
        pair_lengths(pairs), batch_tokens=10**6, shuffle=False, seed=0, max_sentences=16
    )
    assert max(len(b) for b in capped) == 16
