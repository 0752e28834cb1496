"""Invariants shared by all six score functions, and the identities between them."""

import math

import pytest
import torch

from atento.attention import (
    Attention,
    DotScore,
    GeneralScore,
    ScaledDotScore,
    make_score,
)

SCORES = ["cosine", "additive", "location", "general", "dot", "scaled_dot"]
D = 8


def _attention(name: str) -> Attention:
    torch.manual_seed(0)
    return Attention(make_score(name, query_size=D, key_size=D, max_src_len=12)).eval()


def _inputs(batch=3, tgt=4, src=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    query = torch.randn(batch, tgt, D, generator=g)
    memory = torch.randn(batch, src, D, generator=g)
    mask = torch.arange(src) < torch.tensor([6, 3, 1][:batch])[:, None]  # (B, S)
    return query, memory, mask


def _run(attn, query, memory, mask):
    return attn(query, attn.prepare_keys(memory), memory, mask)


@pytest.mark.parametrize("name", SCORES)
def test_weights_sum_to_one_and_zero_on_padding(name):
    attn = _attention(name)
    query, memory, mask = _inputs()
    _, weights = _run(attn, query, memory, mask)
    assert weights.shape == (3, 4, 6)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4))
    assert torch.all(weights.masked_select(~mask.unsqueeze(1).expand_as(weights)) == 0)
    assert torch.all(weights.masked_select(mask.unsqueeze(1).expand_as(weights)) > 0)


@pytest.mark.parametrize("name", SCORES)
def test_extra_padding_leaves_context_unchanged(name):
    attn = _attention(name)
    query, memory, mask = _inputs()
    context, weights = _run(attn, query, memory, mask)
    padded_memory = torch.cat([memory, torch.randn(3, 4, D)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(3, 4, dtype=torch.bool)], dim=1)
    context2, weights2 = _run(attn, query, padded_memory, padded_mask)
    torch.testing.assert_close(context2, context)
    torch.testing.assert_close(weights2[..., :6], weights)


@pytest.mark.parametrize("name", SCORES)
def test_batch_rows_are_independent(name):
    attn = _attention(name)
    query, memory, mask = _inputs()
    context, _ = _run(attn, query, memory, mask)
    for b in range(3):
        single, _ = _run(attn, query[b : b + 1], memory[b : b + 1], mask[b : b + 1])
        torch.testing.assert_close(single, context[b : b + 1])
    # changing another row's memory leaves row 0 alone
    memory2 = memory.clone()
    memory2[1:] = torch.randn_like(memory2[1:])
    context2, _ = _run(attn, query, memory2, mask)
    torch.testing.assert_close(context2[0], context[0])


def test_general_with_identity_equals_dot():
    general = GeneralScore(query_size=D, key_size=D)
    with torch.no_grad():
        general.weight.weight.copy_(torch.eye(D))
    query, memory, _ = _inputs()
    torch.testing.assert_close(
        general(query, general.prepare_keys(memory)), DotScore()(query, memory)
    )


def test_scaled_dot_equals_dot_over_sqrt_d():
    query, memory, _ = _inputs()
    expected = DotScore()(query, memory) / math.sqrt(D)
    torch.testing.assert_close(ScaledDotScore()(query, memory), expected)


def test_dot_energy_by_hand():
    query = torch.tensor([[[1.0, 2.0]]])
    memory = torch.tensor([[[3.0, 0.0], [0.0, 1.0]]])
    mask = torch.tensor([[True, True]])
    _, weights = Attention(DotScore())(query, memory, memory, mask)
    e = torch.tensor([3.0, 2.0])
    torch.testing.assert_close(weights[0, 0], torch.softmax(e, 0))


def test_cosine_ignores_key_norm():
    score = make_score("cosine", query_size=D, key_size=D)
    query, memory, _ = _inputs()
    e1 = score(query, score.prepare_keys(memory))
    e2 = score(query, score.prepare_keys(memory * 7.0))
    torch.testing.assert_close(e1, e2)


def test_location_ignores_key_content_and_handles_long_sources():
    score = make_score("location", query_size=D, key_size=D, max_src_len=5)
    query, memory, _ = _inputs(src=4)
    torch.testing.assert_close(score(query, memory), score(query, torch.randn_like(memory)))
    long = score(query, torch.randn(3, 8, D))
    assert long.shape == (3, 4, 8) and torch.isinf(long[..., 5:]).all()


def test_dot_needs_matching_widths():
    with pytest.raises(ValueError):
        make_score("dot", query_size=4, key_size=6)


@pytest.mark.parametrize("name", SCORES)
def test_gradients_pass_gradcheck(name):
    """Every score's backward (the additive one's tanh runs in place on the sum) against finite
    differences in float64, through the queries and the memory."""
    attn = _attention(name).double()
    query, memory, mask = _inputs()
    query, memory = query.double().requires_grad_(), memory.double().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda q, m: _run(attn, q, m, mask)[0], (query, memory), eps=1e-6, atol=1e-5
    )
