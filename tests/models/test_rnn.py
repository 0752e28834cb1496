"""Path parity for the RNN encoder-decoder: teacher forcing == step-by-step, batch == singles."""

import pytest
import torch

from atento.models.base import DecodeOptions
from atento.models.rnn import RNNSeq2Seq

ATTENTIONS = ["none", "cosine", "additive", "location", "general", "dot", "scaled_dot"]


def _model(attention="additive", cell="gru", input_feeding=False, layers=1):
    torch.manual_seed(0)
    return RNNSeq2Seq(
        src_vocab=17, tgt_vocab=13, emb_size=8, hidden_size=10, enc_layers=layers,
        dec_layers=layers, cell=cell, dropout=0.1, attention=attention,
        input_feeding=input_feeding, max_src_len=12,
    ).eval()  # fmt: skip


def _batch():
    g = torch.Generator().manual_seed(3)
    lengths = torch.tensor([7, 4, 2])
    src_mask = torch.arange(7) < lengths[:, None]  # (B, S) True = real
    src = torch.randint(4, 17, (3, 7), generator=g).masked_fill(~src_mask, 0)
    tgt = torch.randint(4, 13, (3, 5), generator=g)
    return src, src_mask, tgt


VARIANTS = [(a, "gru", False, 1) for a in ATTENTIONS] + [
    ("additive", "lstm", False, 2),
    ("general", "gru", True, 1),
    ("dot", "lstm", True, 2),
    ("none", "lstm", False, 2),
]


@pytest.mark.parametrize("attention,cell,feed,layers", VARIANTS)
def test_teacher_forcing_equals_step_by_step(attention, cell, feed, layers):
    model = _model(attention, cell, feed, layers)
    src, src_mask, tgt = _batch()
    options = DecodeOptions(attention=True)
    with torch.no_grad():
        logits, weights = model(src, src_mask, tgt, options=options)
        assert model(src, src_mask, tgt)[1] is None  # weights only when asked for
        assert (weights is None) == (attention == "none")
        state = model.init_state(model.encode(src, src_mask), options)
        for t in range(tgt.size(1)):
            log_probs, state, w = model.step(tgt[:, t], state, options)
            torch.testing.assert_close(log_probs, torch.log_softmax(logits[:, t], -1))
            if weights is None:
                assert w is None
            else:
                torch.testing.assert_close(w, weights[:, t])
                assert model.step(tgt[:, t], state)[2] is None


@pytest.mark.parametrize("attention,cell,feed,layers", VARIANTS)
def test_batch_of_three_equals_three_batches_of_one(attention, cell, feed, layers):
    model = _model(attention, cell, feed, layers)
    src, src_mask, tgt = _batch()
    with torch.no_grad():
        logits, _ = model(src, src_mask, tgt)
        for b in range(3):
            n = int(src_mask[b].sum())
            single, _ = model(src[b : b + 1, :n], src_mask[b : b + 1, :n], tgt[b : b + 1])
            torch.testing.assert_close(single, logits[b : b + 1], atol=1e-5, rtol=1e-5)


def test_no_attention_decoder_ignores_annotations_beyond_final_state():
    model = _model("none")
    src, src_mask, tgt = _batch()
    enc = model.encode(src, src_mask)
    state = model.init_state(enc)
    logits1, _, w = model.decoder(tgt, state)
    assert w is None
    state.memory = torch.randn_like(state.memory)
    logits2, _, _ = model.decoder(tgt, state)
    torch.testing.assert_close(logits1, logits2)


def test_state_expand_reorder_and_select_pick_rows():
    model = _model("additive", "lstm", True, 2)
    src, src_mask, _ = _batch()
    state = model.init_state(model.encode(src, src_mask))
    wide = state.expand(2)  # row b -> rows 2b, 2b+1
    torch.testing.assert_close(wide.hidden[1][:, 3], state.hidden[1][:, 1])
    torch.testing.assert_close(wide.prev_out[4], state.prev_out[2])
    torch.testing.assert_close(wide.keys[5], state.keys[2])
    for picked in (state.select(torch.tensor([2, 0, 0])), state.reorder(torch.tensor([2, 0, 0]))):
        torch.testing.assert_close(picked.hidden[0][:, 0], state.hidden[0][:, 2])
        torch.testing.assert_close(picked.memory[1], state.memory[0])
        torch.testing.assert_close(picked.keys[0], state.keys[2])
        torch.testing.assert_close(picked.memory_mask[2], state.memory_mask[0])


def test_reordered_state_equals_recomputing_the_prefixes():
    """Rows expanded, fed different tokens, then reordered, repeated and dropped: the next
    step equals teacher forcing over the picked rows' prefixes."""
    model = _model("general", "lstm", True, 2)
    src, src_mask, _ = _batch()
    options = DecodeOptions(attention=True)
    prefixes = torch.randint(4, 13, (6, 4), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        state = model.init_state(model.encode(src, src_mask), options).expand(2)  # 6 rows
        for t in range(3):
            _, state, _ = model.step(prefixes[:, t], state, options)
        rows = torch.tensor([5, 4, 1, 1])  # sentence 2 (beams swapped), then sentence 0
        log_probs, _, w = model.step(prefixes[rows, 3], state.reorder(rows), options)
        sources = rows // 2
        logits, weights = model(src[sources], src_mask[sources], prefixes[rows], options=options)
    torch.testing.assert_close(log_probs, torch.log_softmax(logits[:, 3], -1))
    torch.testing.assert_close(w, weights[:, 3])


def test_layer_and_head_options_are_refused():
    model = _model()
    src, src_mask, _ = _batch()
    enc = model.encode(src, src_mask)
    model.init_state(enc, DecodeOptions(layer=0))  # its one attention
    for bad in (DecodeOptions(layer=1), DecodeOptions(head=0)):
        with pytest.raises(ValueError, match="RNN decoder has one"):
            model.init_state(enc, bad)


def test_select_returns_the_chosen_rows_of_the_full_logits():
    model = _model()
    src, src_mask, tgt = _batch()
    select = torch.rand(tgt.shape, generator=torch.Generator().manual_seed(5)) > 0.3
    full, _ = model(src, src_mask, tgt)
    picked, _ = model(src, src_mask, tgt, select=select)
    assert torch.allclose(picked, full[select], atol=1e-6)
