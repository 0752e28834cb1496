"""Teacher-forced scoring == the sum of per-step log-probs of incremental decoding."""

import math

import pytest
import torch

from atento.analysis.scoring import SequenceScore, score_batch, score_sequences
from atento.data.batching import collate_sources
from atento.data.vocab import BOS_ID, EOS_ID
from atento.models.rnn import RNNSeq2Seq
from atento.search import LengthPenalty, beam_search

SOURCES = [[5, 6, 7, 8, 9, 10, 11], [12, 4], [7, 7, 7, 5]]
TARGETS = [[4, 5, 6, 7, 8], [9], [10, 11, 12]]


def _model(attention="additive", cell="gru", feed=False, layers=1):
    torch.manual_seed(0)
    return RNNSeq2Seq(
        src_vocab=17, tgt_vocab=13, emb_size=8, hidden_size=10, enc_layers=layers,
        dec_layers=layers, cell=cell, dropout=0.3, attention=attention,
        input_feeding=feed, max_src_len=12,
    ).eval()  # fmt: skip


def _step_scores(model, src, tgt, *, finished: bool) -> torch.Tensor:
    """The searchers' path: per-token log-probs (Ty,) of one pair, fed BOS then y_1 .. y_n
    one `model.step` at a time."""
    src_ids, src_mask = collate_sources([list(src)])
    state = model.init_state(model.encode(src_ids, src_mask))
    last, out = torch.tensor([BOS_ID]), []
    with torch.no_grad():
        for y in [*tgt, EOS_ID] if finished else list(tgt):
            log_probs, state, _ = model.step(last, state)  # (1, V)
            out.append(log_probs[0, y])
            last = torch.tensor([y])
    return torch.stack(out)


VARIANTS = [("additive", "gru", False, 1), ("general", "lstm", True, 2), ("none", "gru", False, 1)]


@pytest.mark.parametrize("attention,cell,feed,layers", VARIANTS)
@pytest.mark.parametrize("finished", [True, False])
def test_teacher_forced_equals_sum_of_incremental_steps(attention, cell, feed, layers, finished):
    model = _model(attention, cell, feed, layers)
    scores = score_batch(
        model, SOURCES, TARGETS, length_penalty=LengthPenalty(0.0), finished=[finished] * 3
    )
    for src, tgt, s in zip(SOURCES, TARGETS, scores, strict=True):
        steps = _step_scores(model, src, tgt, finished=finished)
        assert s.length == len(tgt) + finished
        torch.testing.assert_close(torch.tensor(s.token_log_probs), steps, atol=1e-5, rtol=0)
        assert s.log_prob == pytest.approx(float(steps.sum()), abs=1e-5)
        assert all(lp <= 0 for lp in s.token_log_probs)


def test_rescoring_the_beam_output_reproduces_its_log_prob_and_score():
    model, penalty = _model("dot", "gru"), LengthPenalty(0.7)

    src_ids, src_mask = collate_sources(SOURCES)
    with torch.no_grad():
        state = model.init_state(model.encode(src_ids, src_mask))
        nbest = beam_search(
            model.step, state, batch_size=3, beam_size=3, max_len=6, length_penalty=penalty,
            nbest=3,
        )  # fmt: skip
    for src, hyps in zip(SOURCES, nbest, strict=True):
        rescored = score_sequences(
            model, [src] * len(hyps), [h.tokens for h in hyps], length_penalty=penalty,
            finished=[h.finished for h in hyps],
        )  # fmt: skip
        for h, s in zip(hyps, rescored, strict=True):
            assert s.length == h.length
            assert s.log_prob == pytest.approx(h.log_prob, abs=1e-5)
            assert s.score == pytest.approx(h.score, abs=1e-5)


def test_normalised_score_uses_ty_with_eos_like_the_search():
    s = SequenceScore.from_token_log_probs([-1.0, -2.0, -0.5], LengthPenalty(1.0))
    assert s.length == 3 and s.log_prob == pytest.approx(-3.5)
    assert s.score == pytest.approx(-3.5 / 3)
    model = _model()
    [scored] = score_batch(model, [SOURCES[0]], [TARGETS[0]], length_penalty=LengthPenalty(0.5))
    assert scored.score == pytest.approx(scored.log_prob / math.sqrt(len(TARGETS[0]) + 1))


def test_batched_scoring_keeps_input_order_and_matches_singles():
    model = _model()
    penalty = LengthPenalty(0.0)
    together = score_sequences(model, SOURCES, TARGETS, length_penalty=penalty, batch_size=2)
    for src, tgt, s in zip(SOURCES, TARGETS, together, strict=True):
        [alone] = score_batch(model, [src], [tgt], length_penalty=penalty)
        assert s.log_prob == pytest.approx(alone.log_prob, abs=1e-5)


def test_scoring_puts_a_training_model_back_in_training_mode():
    model = _model().train()
    a = score_sequences(model, SOURCES, TARGETS, length_penalty=LengthPenalty(0.0))
    b = score_sequences(model, SOURCES, TARGETS, length_penalty=LengthPenalty(0.0))
    assert model.training  # restored
    assert [x.log_prob for x in a] == [x.log_prob for x in b]  # dropout was off while scoring
