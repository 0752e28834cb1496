"""Batches (masks, BOS / EOS shift) and the token-budget bucketing sampler."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from atento.data.batching import (
    BatchPlan,
    TokenBatchSampler,
    collate,
    collate_arrays,
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


def _reference_chunks(lengths, batch_tokens, max_sentences, indices) -> list[list[int]]:
    """The sampler's greedy chunking as the per-example Python loop it replaced."""
    batches, current, max_src, max_tgt = [], [], 0, 0
    for i in indices:
        s, t = lengths[i][0] + 1, lengths[i][1] + 1
        new_src, new_tgt = max(max_src, s), max(max_tgt, t)
        n = len(current) + 1
        too_big = (
            n * new_tgt > batch_tokens
            or n * new_src > batch_tokens
            or (max_sentences > 0 and n > max_sentences)
        )
        if current and too_big:
            batches.append(current)
            current, new_src, new_tgt = [], s, t
        current.append(i)
        max_src, max_tgt = new_src, new_tgt
    return batches + ([current] if current else [])


CASES = [(400, 0, True), (37, 0, True), (10**5, 16, False), (60, 3, True)]


@pytest.mark.parametrize(("budget", "cap", "shuffle"), CASES)
def test_vectorised_plan_equals_the_per_example_loop(budget, cap, shuffle) -> None:
    lengths = _lengths(3000, seed=budget)
    sampler = TokenBatchSampler(lengths, batch_tokens=budget, shuffle=shuffle, seed=7,
                                max_sentences=cap)  # fmt: skip
    for epoch in (0, 1):
        order = sampler._sorted_indices(epoch).tolist()
        src, tgt = sampler.src_lens, sampler.tgt_lens  # the lexsort the one-key sort replaced
        if shuffle:
            perm = np.random.default_rng([7, epoch]).permutation(len(tgt))
            assert order == perm[np.lexsort((src[perm], tgt[perm]))].tolist()
        else:
            assert order == np.lexsort((np.arange(len(tgt)), src, tgt)).tolist()
        expected = _reference_chunks(lengths, budget, cap, order)
        plan = sampler.batches(epoch)
        assert sorted(map(tuple, plan)) == sorted(map(tuple, expected))
        if not shuffle:
            assert plan == expected


def test_plan_is_numpy_and_slices_like_a_list() -> None:
    lengths = np.asarray(_lengths(500), dtype=np.int64)  # an (N, 2) array, as a store gives
    sampler = TokenBatchSampler(lengths, batch_tokens=300, shuffle=True, seed=4)
    plan = sampler.batches(0)
    assert isinstance(plan, BatchPlan) and isinstance(plan.order, np.ndarray)
    as_lists = [list(b) for b in plan]
    assert plan[3:] == as_lists[3:] and plan[-2] == as_lists[-2]
    assert plan[5:] + plan[:5] == as_lists[5:] + as_lists[:5]
    assert sampler.batches(0) == TokenBatchSampler(
        [tuple(r) for r in lengths.tolist()], batch_tokens=300, shuffle=True, seed=4
    ).batches(0)


def test_plan_of_a_million_examples_is_quick_and_small() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 60, size=(1_000_000, 2))
    sampler = TokenBatchSampler(lengths, batch_tokens=4000, shuffle=True, seed=1)
    plan = sampler.batches(0)
    assert sum(len(plan[k]) for k in range(0, len(plan), 997)) > 0
    assert plan.order.nbytes + plan.starts.nbytes * 2 < 20 * 1_000_000
    assert int((plan.ends - plan.starts).sum()) == 1_000_000


def test_collate_arrays_equals_collate_of_lists() -> None:
    rng = np.random.default_rng(5)
    pairs = [(rng.integers(4, 60000, rng.integers(1, 9)).tolist(),
              rng.integers(4, 60000, rng.integers(1, 9)).tolist()) for _ in range(13)]  # fmt: skip
    rows = [(np.asarray(s, np.uint16), np.asarray(t, np.uint16)) for s, t in pairs]
    for ids in ({}, {"src_eos": 7, "bos_id": 9, "eos_id": 8}):  # the tokenizer's own ids
        a = collate(pairs, **ids)
        b = collate_arrays([s for s, _ in rows], [t for _, t in rows], **ids)
        for name in ("src_ids", "src_mask", "tgt_in", "tgt_out", "tgt_mask"):
            x, y = getattr(a, name), getattr(b, name)
            assert x.dtype == y.dtype and torch.equal(x, y), name
        assert a.n_tgt_tokens == b.n_tgt_tokens
