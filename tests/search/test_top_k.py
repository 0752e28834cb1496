"""The blocked top-k of beam search equals torch.topk."""

import pytest
import torch

from atento.search.step import banned_ids, top_k


@pytest.mark.parametrize("width", [40000, 40003, 6400, 300, 7])
@pytest.mark.parametrize("k", [1, 2, 10])
def test_top_k_equals_torch_topk(width, k):
    g = torch.Generator().manual_seed(width + k)
    x = torch.randn(6, width, generator=g)
    if width > k:
        x[1, : width - 3] = float("-inf")  # a row with only 3 finite values
        x[2, -1] = 100.0  # the best value in the tail beyond the last full block
    k = min(k, width)
    values, index = top_k(x, k)
    expected_values, expected_index = x.topk(k, dim=1)
    assert torch.equal(values, expected_values)
    finite = expected_values.isfinite()
    assert torch.equal(index[finite], expected_index[finite])  # -inf ties may differ
    assert torch.equal(x.gather(1, index), values)


def test_top_k_with_values_crowded_into_one_block():
    x = torch.full((2, 10000), -5.0)
    x[:, 128:138] = torch.arange(10.0)  # the ten best all lie in block 2 (columns 128..191)
    values, index = top_k(x, 10)
    assert torch.equal(values[0], torch.arange(9.0, -1.0, -1.0))
    assert torch.equal(index[0], torch.arange(137, 127, -1))


def test_banned_ids():
    assert banned_ids(10, pad_id=0, bos_id=2, eos_id=3) == [0, 2]
    assert banned_ids(10, pad_id=0, bos_id=1, eos_id=1) == [0]  # one shared boundary token
