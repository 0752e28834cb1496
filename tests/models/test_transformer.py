"""Path parity for the Transformer: teacher forcing == step-by-step, cached == uncached decoding
(greedy and beam), grouped == flat and reordered == recomputed states, causality, padding
invariance, batch == singles, attention views chosen by `DecodeOptions`."""

from functools import partial

import pytest
import torch

from atento.config_io import config_from_dict
from atento.errors import AtentoError
from atento.models.base import DecodeOptions
from atento.models.transformer import TransformerSeq2Seq
from atento.registry import build_model
from atento.search import LengthPenalty, beam_search, greedy_search

V = 19


def _model(**kw):
    torch.manual_seed(0)
    args = dict(src_vocab=V, tgt_vocab=V, d_model=16, heads=4, ff_size=32, layers=2, dropout=0.1)
    return TransformerSeq2Seq(**{**args, **kw}).eval()


def _peaky_model():
    """Larger random weights than Xavier: untrained models with Xavier init repeat one token,
    and beams that differ only in length cannot reveal a missing cache reorder."""
    model = _model()
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.3)
    return model


def _batch():
    g = torch.Generator().manual_seed(3)
    src_mask = torch.arange(7) < torch.tensor([7, 4, 2])[:, None]  # (B, S) True = real
    src = torch.randint(4, V, (3, 7), generator=g).masked_fill(~src_mask, 0)
    tgt = torch.randint(4, V, (3, 6), generator=g)
    return src, src_mask, tgt


VARIANTS = [
    {},
    {"pre_norm": True},
    {"positions": "learned", "max_positions": 32},
    {"share_embeddings": False, "tie_embeddings": False, "src_vocab": 23},
]


@pytest.mark.parametrize("kw", VARIANTS)
@pytest.mark.parametrize("use_cache", [True, False])
def test_teacher_forcing_equals_step_by_step(kw, use_cache):
    model = _model(**kw)
    options = DecodeOptions(attention=True, use_cache=use_cache)
    src, src_mask, tgt = _batch()
    with torch.no_grad():
        logits, weights = model(src, src_mask, tgt, options=options)
        plain, no_weights = model(src, src_mask, tgt)  # default options: no weights
        assert no_weights is None
        torch.testing.assert_close(plain, logits)
        state = model.init_state(model.encode(src, src_mask), options)
        assert (state.caches is not None) == use_cache
        for t in range(tgt.size(1)):
            log_probs, state, w = model.step(tgt[:, t], state, options)
            torch.testing.assert_close(log_probs, torch.log_softmax(logits[:, t], -1))
            torch.testing.assert_close(w, weights[:, t])


def _decode(model, use_cache, beam):
    options = DecodeOptions(attention=True, use_cache=use_cache)
    step = partial(model.step, options=options)
    src, src_mask, _ = _batch()
    with torch.no_grad():
        state = model.init_state(model.encode(src, src_mask), options)
        penalty = LengthPenalty(1.0)
        if beam == 1:
            return [[h] for h in greedy_search(step, state, batch_size=3, max_len=9,
                                                length_penalty=penalty)]  # fmt: skip
        return beam_search(step, state, batch_size=3, beam_size=beam, max_len=9,
                           length_penalty=penalty, nbest=beam)  # fmt: skip


@pytest.mark.parametrize("beam", [1, 3, 5])
def test_cached_decoding_equals_uncached(beam):
    model = _peaky_model()
    cached, uncached = _decode(model, True, beam), _decode(model, False, beam)
    assert len({tuple(h.tokens) for hyps in cached for h in hyps}) > beam  # varied outputs
    for a_list, b_list in zip(cached, uncached, strict=True):
        assert len(a_list) == len(b_list) == beam
        for a, b in zip(a_list, b_list, strict=True):
            assert a.tokens == b.tokens and a.finished == b.finished
            assert a.score == pytest.approx(b.score, abs=1e-4)
            torch.testing.assert_close(a.attention, b.attention, atol=1e-5, rtol=1e-4)


def test_beam_search_would_catch_a_missing_cache_reorder():
    """Sanity check of the test above: skipping the reorder changes beam outputs."""
    from atento.models import transformer as tf

    model = _peaky_model()
    good = _decode(model, True, 5)
    original = tf.TransformerState.reorder

    def no_cache_reorder(self, rows):
        out = original(self, rows)
        if self.caches is not None and rows.numel() == self.tgt_ids.size(0):
            out.caches = self.caches  # forgot to reorder the cache (sizes still match)
        return out

    tf.TransformerState.reorder = no_cache_reorder
    try:
        bad = _decode(model, True, 5)
    finally:
        tf.TransformerState.reorder = original
    assert any(
        a.tokens != b.tokens or abs(a.score - b.score) > 1e-4
        for a_list, b_list in zip(good, bad, strict=True)
        for a, b in zip(a_list, b_list, strict=True)
    )


def test_causal_mask_future_tokens_do_not_change_the_past():
    model = _model()
    src, src_mask, tgt = _batch()
    changed = tgt.clone()
    changed[:, 3] = (changed[:, 3] + 1 - 4) % (V - 4) + 4
    with torch.no_grad():
        a, _ = model(src, src_mask, tgt)
        b, _ = model(src, src_mask, changed)
    torch.testing.assert_close(a[:, :3], b[:, :3])
    assert not torch.allclose(a[:, 3:], b[:, 3:])


def test_extra_source_padding_leaves_outputs_unchanged():
    model = _model()
    src, src_mask, tgt = _batch()
    padded = torch.cat([src, torch.zeros(3, 4, dtype=torch.long)], 1)
    padded_mask = torch.cat([src_mask, torch.zeros(3, 4, dtype=torch.bool)], 1)
    options = DecodeOptions(attention=True)
    with torch.no_grad():
        a, wa = model(src, src_mask, tgt, options=options)
        b, wb = model(padded, padded_mask, tgt, options=options)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(wa, wb[..., :7], atol=1e-6, rtol=1e-5)
    assert torch.all(wb[..., 7:] == 0)


def test_batch_of_three_equals_three_batches_of_one():
    model = _model()
    src, src_mask, tgt = _batch()
    with torch.no_grad():
        logits, _ = model(src, src_mask, tgt)
        for b in range(3):
            n = int(src_mask[b].sum())
            single, _ = model(src[b : b + 1, :n], src_mask[b : b + 1, :n], tgt[b : b + 1])
            torch.testing.assert_close(single, logits[b : b + 1], atol=1e-5, rtol=1e-5)


def test_state_select_picks_any_rows():
    model = _model()
    src, src_mask, tgt = _batch()
    state = model.init_state(model.encode(src, src_mask))
    _, state, _ = model.step(tgt[:, 0], state)
    picked = state.select(torch.tensor([2, 0, 2]))
    assert picked.tgt_ids.shape == (3, 1) and picked.memory.shape[0] == 3 and picked.group == 1
    for a, b in zip(picked.caches, state.caches, strict=True):
        torch.testing.assert_close(a.self_kv.keys[0], b.self_kv.keys[2])
        torch.testing.assert_close(a.self_kv.keys[2], b.self_kv.keys[2])
        torch.testing.assert_close(a.cross_kv.values[1], b.cross_kv.values[0])


def test_attention_view_selects_layer_and_head():
    model = _model()
    src, src_mask, tgt = _batch()
    with torch.no_grad():
        heads = model.attention_heads(src, src_mask, tgt, layer=0)  # (B, H, T, S)
        _, w = model(src, src_mask, tgt, options=DecodeOptions(attention=True, layer=0, head=2))
        torch.testing.assert_close(w, heads[:, 2])
        _, w = model(src, src_mask, tgt, options=DecodeOptions(attention=True, layer=-2))
        torch.testing.assert_close(w, heads.mean(1))
        state = model.init_state(model.encode(src, src_mask))
        options = DecodeOptions(attention=True, layer=0, head=1)
        _, _, w = model.step(tgt[:, 0], state, options)
        torch.testing.assert_close(w, heads[:, 1, 0])
    for bad in ({"layer": 2}, {"layer": -3}, {"head": 4}, {"head": -1}):
        options = DecodeOptions(attention=True, **bad)
        with pytest.raises(ValueError, match="out of range"):
            model.check_options(options)
        with pytest.raises(ValueError, match="out of range"):
            model(src, src_mask, tgt, options=options)
        with pytest.raises(ValueError, match="out of range"):
            model.init_state(model.encode(src, src_mask), options)
    with pytest.raises(ValueError, match="out of range"):
        model.attention_heads(src, src_mask, tgt, layer=2)


def test_training_forward_skips_weights_and_backpropagates():
    model = _model().train()
    src, src_mask, tgt = _batch()
    logits, weights = model(src, src_mask, tgt)
    assert weights is None and logits.shape == (3, 6, V)
    logits.sum().backward()
    assert model.tgt_embed.weight.grad is not None


def test_shared_embeddings_need_one_vocabulary():
    with pytest.raises(ValueError, match="joint vocabulary"):
        _model(src_vocab=V + 1)
    model = _model()
    assert model.src_embed.weight is model.output.weight
    assert torch.all(model.src_embed.weight[0] == 0)  # PAD row


def test_factory_builds_a_transformer_from_the_config():
    cfg = config_from_dict({"model": {"arch": "transformer", "d_model": 16, "heads": 2,
                                      "ff_size": 32, "layers": 1}})  # fmt: skip
    assert isinstance(build_model(cfg, src_vocab=V, tgt_vocab=V), TransformerSeq2Seq)
    # the config is validated once, when it is read; the factory only builds
    with pytest.raises(AtentoError, match="joint_vocab"):
        config_from_dict({"data": {"joint_vocab": False}, "model": {"arch": "transformer"}})
    with pytest.raises(AtentoError, match="multiple"):
        config_from_dict({"model": {"arch": "transformer", "d_model": 10, "heads": 4}})


def test_select_returns_the_chosen_rows_of_the_full_logits():
    model = _model()
    src, src_mask, tgt = _batch()
    select = torch.rand(tgt.shape, generator=torch.Generator().manual_seed(5)) > 0.3
    full, _ = model(src, src_mask, tgt)
    picked, _ = model(src, src_mask, tgt, select=select)
    assert torch.allclose(picked, full[select], atol=1e-6)


def test_bf16_autocast_training_step_keeps_fused_attention_close_to_fp32():
    model = _model(dropout=0.0).train()
    src, src_mask, tgt = _batch()
    ref, _ = model(src, src_mask, tgt)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low, _ = model(src, src_mask, tgt)
    low.float().sum().backward()  # the fp32 attention path under autocast has a backward
    assert low.dtype == torch.bfloat16
    assert torch.allclose(low.float(), ref, atol=0.1)


def test_beams_share_one_copy_of_the_source_side():
    """expand and reorder move only the target side; the source side is gathered when a
    sentence leaves the batch, and select (any rows) falls back to one source row per row."""
    model = _model()
    src, src_mask, tgt = _batch()
    state = model.init_state(model.encode(src, src_mask))
    wide = state.expand(4)  # B = 3, K = 4
    assert wide.group == 4 and wide.memory is state.memory and wide.tgt_ids.size(0) == 12
    _, wide, _ = model.step(tgt[:, 0].repeat_interleave(4), wide)
    swapped = wide.reorder(torch.tensor([1, 0, 3, 2, 4, 5, 6, 7, 11, 10, 9, 8]))
    assert swapped.group == 4 and swapped.caches[0].cross_kv is not None
    assert swapped.caches[0].cross_kv.keys is wide.caches[0].cross_kv.keys
    torch.testing.assert_close(swapped.caches[0].self_kv.keys[0], wide.caches[0].self_kv.keys[1])
    two = wide.reorder(torch.tensor([8, 9, 10, 11, 0, 1, 2, 3]))  # sentence 1 finished
    assert two.group == 4 and two.memory.size(0) == 2
    torch.testing.assert_close(two.memory[0], state.memory[2])
    torch.testing.assert_close(two.caches[1].cross_kv.keys[1], state.caches[1].cross_kv.keys[0])
    odd = wide.select(torch.tensor([5, 0, 1]))
    assert odd.group == 1 and odd.memory.size(0) == 3
    torch.testing.assert_close(odd.memory[0], state.memory[1])
    assert wide.expand(2).group == 8  # groups nest: rows b*2 .. b*2+1 of 24
    with pytest.raises(ValueError, match="multiple"):
        wide.reorder(torch.tensor([0, 1, 2]))


def test_grouped_step_equals_one_row_per_hypothesis():
    model = _peaky_model()
    src, src_mask, tgt = _batch()
    options = DecodeOptions(attention=True)
    state = model.init_state(model.encode(src, src_mask), options)
    grouped = state.expand(2)
    flat = state.select(torch.arange(3).repeat_interleave(2))
    assert grouped.group == 2 and flat.group == 1 and flat.memory.size(0) == 6
    ids = torch.tensor([4, 5, 6, 7, 8, 9])
    for _ in range(3):
        a, grouped, wa = model.step(ids, grouped, options)
        b, flat, wb = model.step(ids, flat, options)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(wa, wb, atol=1e-6, rtol=1e-5)
        ids = a.argmax(-1)


@pytest.mark.parametrize("use_cache", [True, False])
def test_reordered_state_equals_recomputing_the_prefixes(use_cache):
    """Beams reordered within their sentences, repeated, one sentence dropped: the next step
    equals teacher forcing over the reordered prefixes (log-probs and attention)."""
    model = _peaky_model()
    src, src_mask, _ = _batch()
    options = DecodeOptions(attention=True, layer=0, head=1, use_cache=use_cache)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        state = model.init_state(model.encode(src, src_mask), options).expand(3)  # 9 rows
        ids = torch.full((9,), 2)  # BOS
        for _ in range(3):
            _, state, _ = model.step(ids, state, options)
            ids = torch.randint(4, V, (9,), generator=g)
        rows = torch.tensor([5, 3, 3, 8, 6, 7])  # sentence 1 (beams reordered), then 2; 0 done
        moved = state.reorder(rows)
        assert moved.group == 3 and moved.memory.size(0) == 2
        log_probs, _, weights = model.step(ids[rows], moved, options)
        prefixes = torch.cat([state.tgt_ids[rows], ids[rows, None]], dim=1)  # (6, 4), BOS first
        sources = torch.tensor([1, 1, 1, 2, 2, 2])
        logits, expected = model(src[sources], src_mask[sources], prefixes, options=options)
    torch.testing.assert_close(log_probs, torch.log_softmax(logits[:, -1], -1))
    torch.testing.assert_close(weights, expected[:, -1])
