"""Multi-head attention: identities with the scaled-dot score path, fast == explicit, KV cache."""

import pytest
import torch

from atento.attention import (
    Attention,
    KVCache,
    MultiHeadAttention,
    ScaledDotScore,
    causal_mask,
)

D = 16


def _mha(heads=4, fast=True, seed=0):
    torch.manual_seed(seed)
    return MultiHeadAttention(d_model=D, heads=heads, fast=fast).eval()


def _inputs(batch=3, tgt=5, src=7, seed=1):
    g = torch.Generator().manual_seed(seed)
    query = torch.randn(batch, tgt, D, generator=g)
    memory = torch.randn(batch, src, D, generator=g)
    key_mask = torch.arange(src) < torch.tensor([7, 4, 1][:batch])[:, None]  # (B, S)
    return query, memory, key_mask


def _identity(mha):
    with torch.no_grad():
        for proj in (mha.q_proj, mha.k_proj, mha.v_proj, mha.out_proj):
            proj.weight.copy_(torch.eye(D))
            proj.bias.zero_()
    return mha


def test_single_head_identity_projections_equal_scaled_dot_attention():
    mha = _identity(_mha(heads=1, fast=False))
    query, memory, key_mask = _inputs()
    out, weights, _ = mha(query, memory, mask=key_mask.unsqueeze(1), need_weights=True)
    attn = Attention(ScaledDotScore())
    context, expected = attn(query, attn.prepare_keys(memory), memory, key_mask)
    torch.testing.assert_close(out, context)
    torch.testing.assert_close(weights[:, 0], expected)


def test_explicit_path_reuses_the_scaled_dot_score_module():
    assert isinstance(_mha().score, ScaledDotScore)


@pytest.mark.parametrize("kind", ["none", "padding", "causal", "both"])
def test_fast_path_equals_explicit_path(kind):
    mha = _mha()
    query, _, key_mask = _inputs(src=5)
    pad = key_mask.unsqueeze(1)  # (B, 1, S)
    causal = causal_mask(5).unsqueeze(0)  # (1, T, T)
    mask = {"none": None, "padding": pad, "causal": causal, "both": pad & causal}[kind]
    fast, none_weights, _ = mha(query, mask=mask)
    explicit, weights, _ = mha(query, mask=mask, need_weights=True)
    assert none_weights is None and weights.shape == (3, 4, 5, 5)
    torch.testing.assert_close(fast, explicit, atol=1e-5, rtol=1e-5)
    mha.fast = False
    torch.testing.assert_close(mha(query, mask=mask)[0], explicit)


def test_cross_attention_fast_equals_explicit_with_padding():
    mha = _mha()
    query, memory, key_mask = _inputs()
    fast, _, _ = mha(query, memory, mask=key_mask.unsqueeze(1))
    explicit, weights, _ = mha(query, memory, mask=key_mask.unsqueeze(1), need_weights=True)
    torch.testing.assert_close(fast, explicit, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4, 5))
    masked = ~key_mask[:, None, None, :].expand_as(weights)
    assert torch.all(weights[masked] == 0)


def test_incremental_self_attention_with_cache_equals_causal_full_pass():
    mha = _mha()
    query, _, _ = _inputs()
    full, full_w, _ = mha(query, mask=causal_mask(5).unsqueeze(0), need_weights=True)
    cache = None
    for t in range(5):
        out, w, cache = mha(query[:, t : t + 1], cache=cache, need_weights=True)
        assert cache.length == t + 1
        torch.testing.assert_close(out[:, 0], full[:, t], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(w[..., 0, :], full_w[..., t, : t + 1])


def test_cross_attention_cache_is_the_projected_memory():
    mha = _mha()
    query, memory, key_mask = _inputs()
    cache = mha.project_kv(memory)
    with_cache, _, same = mha(query, memory, mask=key_mask.unsqueeze(1), cache=cache)
    without, _, _ = mha(query, memory, mask=key_mask.unsqueeze(1))
    assert same is cache
    torch.testing.assert_close(with_cache, without)


def test_kv_cache_index_select_and_append():
    keys = torch.arange(3.0).view(3, 1, 1, 1).expand(3, 2, 4, 5)
    cache = KVCache(keys, keys + 10)
    picked = cache.index_select(torch.tensor([2, 2, 0, 1]))
    assert picked.keys[:, 0, 0, 0].tolist() == [2.0, 2.0, 0.0, 1.0]
    assert picked.values[:, 0, 0, 0].tolist() == [12.0, 12.0, 10.0, 11.0]
    assert cache.append(cache).length == 8


def test_heads_must_divide_width():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(d_model=10, heads=4)


def test_a_float64_model_keeps_float64_attention():
    torch.manual_seed(0)
    mha = MultiHeadAttention(d_model=8, heads=2).double().eval()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    out, weights, _ = mha(x, need_weights=True)
    assert out.dtype == weights.dtype == torch.float64
    q, k, v = (p(x).view(2, 5, 2, 4).transpose(1, 2) for p in (mha.q_proj, mha.k_proj, mha.v_proj))
    expected = torch.softmax(q @ k.transpose(-1, -2) / 2.0, dim=-1)  # sqrt(4) = 2
    torch.testing.assert_close(weights, expected, rtol=0, atol=1e-12)


def _kv(n: int, t: int, seed: int) -> KVCache:
    g = torch.Generator().manual_seed(seed)
    return KVCache(torch.randn(n, 2, t, 4, generator=g), torch.randn(n, 2, t, 4, generator=g))


def test_cache_append_keeps_room_and_equals_concatenation():
    cache, steps = _kv(3, 5, 0), [_kv(3, 1, i + 1) for i in range(30)]
    expected_k, expected_v = cache.keys, cache.values
    for i, step in enumerate(steps):
        before = cache
        cache = cache.append(step)
        expected_k = torch.cat([expected_k, step.keys], 2)
        expected_v = torch.cat([expected_v, step.values], 2)
        assert torch.equal(cache.keys, expected_k) and torch.equal(cache.values, expected_v)
        if i > 0 and before.room is not None and cache.length <= before.room.keys.size(2):
            assert cache.keys.data_ptr() == before.keys.data_ptr()  # written in place: no copy
    assert cache.length == 35 and cache.room.keys.size(2) < 2 * 35  # room grows by half
    once = _kv(3, 5, 0).index_select(torch.tensor([2, 0])).append(_kv(2, 1, 9))  # beam search
    assert once.room.keys.shape == once.keys.shape  # one exact copy, no spare room


def test_cache_append_is_a_value_two_branches_from_one_cache():
    base = _kv(2, 4, 0).append(_kv(2, 1, 1)).append(_kv(2, 1, 4))  # now with spare room
    a, b = base.append(_kv(2, 1, 2)), base.append(_kv(2, 1, 3))  # b cannot take a's room
    assert base.room.keys.size(2) > base.length
    assert torch.equal(a.keys[:, :, :6], base.keys) and torch.equal(b.keys[:, :, :6], base.keys)
    assert torch.equal(a.keys[:, :, 6:], _kv(2, 1, 2).keys)
    assert torch.equal(b.keys[:, :, 6:], _kv(2, 1, 3).keys)
    assert a.keys.data_ptr() != b.keys.data_ptr()


def test_cache_append_with_gradients_or_out_of_inference_mode():
    with torch.inference_mode():
        grown = _kv(1, 3, 0).append(_kv(1, 1, 1))  # room of inference tensors
    later = grown.append(_kv(1, 1, 2))  # outside inference mode: copied, no error
    assert torch.equal(later.keys[:, :, :4], grown.keys)
    keys = torch.randn(1, 2, 1, 4, requires_grad=True)
    tracked = grown.append(KVCache(keys, keys * 2))
    assert tracked.room is None  # concatenated: differentiable
    tracked.values.sum().backward()
    assert torch.equal(keys.grad, torch.full_like(keys, 2.0))
