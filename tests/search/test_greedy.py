import pytest
import torch

from atento.search import Hypothesis, LengthPenalty, greedy_search

from .scripted import BOS, EOS, PAD, ScriptedModel, random_table, table_from_probs


def _greedy_by_hand(model: ScriptedModel, source: int, max_len: int) -> tuple[list[int], bool]:
    ids: list[int] = []
    while len(ids) < max_len:
        y = int(model.log_probs(source, tuple(ids)).argmax())
        ids.append(y)
        if y == EOS:
            return ids[:-1], True
    return ids, False


def test_batched_greedy_matches_one_sentence_at_a_time_by_hand():
    model = ScriptedModel(random_table(8, seed=3, eos_bias=0.5), vocab_size=8)
    max_lens = torch.tensor([1, 2, 4, 6, 9, 12])
    sources = list(range(6))
    hyps = greedy_search(
        model.step,
        model.start(sources),
        batch_size=6,
        max_len=max_lens,
        length_penalty=LengthPenalty(0.7),
    )
    assert len(hyps) == 6
    for source, hyp, max_len in zip(sources, hyps, max_lens.tolist(), strict=True):
        tokens, finished = _greedy_by_hand(model, source, max_len)
        assert hyp.tokens == tokens
        assert hyp.finished == finished
        assert len(hyp.tokens) + hyp.finished <= max_len
        lps, rows = model.score(source, tokens, finished=finished)
        assert hyp.token_log_probs == pytest.approx(lps, abs=1e-6)
        assert hyp.log_prob == pytest.approx(sum(lps), abs=1e-5)
        assert hyp.score == pytest.approx(sum(lps) / len(lps) ** 0.7, abs=1e-5)
        assert torch.allclose(hyp.attention, rows)
    assert any(h.finished for h in hyps) and any(not h.finished for h in hyps)


def test_finished_sentences_are_dropped_from_the_batch():
    probs = {(): {4: 0.6, EOS: 0.4}, (4,): {4: 0.7, EOS: 0.3}}
    # every sentence reads 4 4 EOS; sentence 0 is cut after one token
    model = ScriptedModel(table_from_probs(probs, 6), vocab_size=6, with_attention=False)
    hyps = greedy_search(
        model.step, model.start([0, 1]), batch_size=2, max_len=torch.tensor([1, 5])
    )
    assert [h.tokens for h in hyps] == [[4], [4, 4]]
    assert [h.finished for h in hyps] == [False, True]
    assert model.rows_per_step == [2, 1, 1]
    assert hyps[0].attention is None
    assert hyps[1].log_prob == pytest.approx(torch.tensor([0.6, 0.7, 1.0]).log().sum().item())


def test_pad_and_bos_are_never_generated():
    probs = {(): {PAD: 0.5, BOS: 0.3, 4: 0.2}, (4,): {EOS: 1.0}}
    model = ScriptedModel(table_from_probs(probs, 6), vocab_size=6)
    (hyp,) = greedy_search(model.step, model.start([0]), batch_size=1, max_len=5)
    assert isinstance(hyp, Hypothesis)
    assert hyp.tokens == [4] and hyp.finished
    assert hyp.token_log_probs == pytest.approx([torch.tensor(0.2).log().item(), 0.0])
    assert hyp.length == 2
