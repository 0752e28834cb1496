"""Path parity for the Transformer: teacher forcing == step-by-step, cached == uncached decoding
(greedy and beam), causality, padding invariance, batch == singles, attention views."""

import pytest
import torch

from atento.attention import lengths_to_mask
from atento.config import config_from_dict
from atento.errors import AtentoError
from atento.models.factory import build_model
from atento.models.transformer import TransformerSeq2Seq
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
    src_mask = lengths_to_mask(torch.tensor([7, 4, 2]), 7)
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
    model.use_cache = use_cache
    src, src_mask, tgt = _batch()
    with torch.no_grad():
        logits, weights = model(src, src_mask, tgt)
        state = model.init_state(model.encode(src, src_mask))
        for t in range(tgt.size(1)):
            log_probs, state, w = model.step(tgt[:, t], state)
            torch.testing.assert_close(log_probs, torch.log_softmax(logits[:, t], -1))
            torch.testing.assert_close(w, weights[:, t])


def _decode(model, use_cache, beam):
    model.use_cache = use_cache
    src, src_mask, _ = _batch()
    with torch.no_grad():
        state = model.init_state(model.encode(src, src_mask))
        penalty = LengthPenalty(1.0)
        if beam == 1:
            return [[h] for h in greedy_search(model.step, state, batch_size=3, max_len=9,
                                                length_penalty=penalty)]  # fmt: skip
        return beam_search(model.step, state, batch_size=3, beam_size=beam, max_len=9,
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
    original = tf.TransformerState.index_select

    def no_cache_reorder(self, index):
        out = original(self, index)
        if self.caches is not None and index.numel() == self.tgt_ids.size(0):
            out.caches = self.caches  # forgot to reorder the cache (sizes still match)
        return out

    tf.TransformerState.index_select = no_cache_reorder
    try:
        bad = _decode(model, True, 5)
    finally:
        tf.TransformerState.index_select = original
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
    with torch.no_grad():
        a, wa = model(src, src_mask, tgt)
        b, wb = model(padded, padded_mask, tgt)
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


def test_state_index_select_repeats_reorders_and_shrinks():
    model = _model()
    src, src_mask, tgt = _batch()
    state = model.init_state(model.encode(src, src_mask))
    _, state, _ = model.step(tgt[:, 0], state)
    picked = state.index_select(torch.tensor([2, 0]))
    assert picked.tgt_ids.shape == (2, 1) and picked.memory.shape[0] == 2
    for a, b in zip(picked.caches, state.caches, strict=True):
        torch.testing.assert_close(a.self_kv.keys[0], b.self_kv.keys[2])
        torch.testing.assert_close(a.cross_kv.values[1], b.cross_kv.values[0])


def test_attention_view_selects_layer_and_head():
    model = _model()
    src, src_mask, tgt = _batch()
    with torch.no_grad():
        heads = model.attention_heads(src, src_mask, tgt, layer=0)  # (B, H, T, S)
        model.set_attention_view(layer=0, head=2)
        _, w = model(src, src_mask, tgt)
        torch.testing.assert_close(w, heads[:, 2])
        model.set_attention_view(layer=0)
        torch.testing.assert_close(model(src, src_mask, tgt)[1], heads.mean(1))
    for bad in ({"layer": 2}, {"layer": -3}, {"head": 4}, {"head": -1}):
        with pytest.raises(ValueError, match="out of range"):
            model.set_attention_view(**bad)


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
    bad = config_from_dict({"data": {"joint_vocab": False}, "model": {"arch": "transformer"}})
    with pytest.raises(AtentoError, match="joint_vocab"):
        build_model(bad, src_vocab=V, tgt_vocab=V)
    bad = config_from_dict({"model": {"arch": "transformer", "d_model": 10, "heads": 4}})
    with pytest.raises(AtentoError, match="multiple"):
        build_model(bad, src_vocab=V, tgt_vocab=V)


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
    """Beam expansion and reordering move only the target side; the source side is gathered
    when a sentence leaves the batch, and arbitrary row picks fall back to one row per row."""
    model = _model()
    src, src_mask, tgt = _batch()
    state = model.init_state(model.encode(src, src_mask))
    wide = state.index_select(torch.arange(3).repeat_interleave(4))  # B = 3, K = 4
    assert wide.group == 4 and wide.memory is state.memory and wide.tgt_ids.size(0) == 12
    _, wide, _ = model.step(tgt[:, 0].repeat_interleave(4), wide)
    swapped = wide.index_select(torch.tensor([1, 0, 3, 2, 4, 5, 6, 7, 11, 10, 9, 8]))
    assert swapped.group == 4 and swapped.caches[0].cross_kv is not None
    assert swapped.caches[0].cross_kv.keys is wide.caches[0].cross_kv.keys
    torch.testing.assert_close(swapped.caches[0].self_kv.keys[0], wide.caches[0].self_kv.keys[1])
    two = wide.index_select(torch.tensor([8, 9, 10, 11, 0, 1, 2, 3]))  # sentence 1 finished
    assert two.group == 4 and two.memory.size(0) == 2
    torch.testing.assert_close(two.memory[0], state.memory[2])
    odd = wide.index_select(torch.tensor([5, 0, 1]))
    assert odd.group == 1 and odd.memory.size(0) == 3
    torch.testing.assert_close(odd.memory[0], state.memory[1])


def test_grouped_step_equals_one_row_per_hypothesis():
    model = _peaky_model()
    src, src_mask, tgt = _batch()
    state = model.init_state(model.encode(src, src_mask))
    grouped = state.index_select(torch.arange(3).repeat_interleave(2))
    flat = state.index_select(torch.tensor([0, 0, 1, 1, 2, 2]) + 0)
    flat.group = 1
    flat.memory = state.memory.repeat_interleave(2, 0)
    flat.memory_mask = state.memory_mask.repeat_interleave(2, 0)
    for c in flat.caches:
        c.cross_kv = c.cross_kv.index_select(torch.arange(3).repeat_interleave(2))
    ids = torch.tensor([4, 5, 6, 7, 8, 9])
    for _ in range(3):
        a, grouped, wa = model.step(ids, grouped)
        b, flat, wb = model.step(ids, flat)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(wa, wb, atol=1e-6, rtol=1e-5)
        ids = a.argmax(-1)
