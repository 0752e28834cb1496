import itertools
import math

import pytest
import torch

from atento.errors import AtentoError
from atento.search import Hypothesis, LengthPenalty, beam_search, greedy_search

from .scripted import (
    AFRICA,
    EOS,
    GOING,
    IN,
    IS,
    JANE,
    LECTURE,
    SEPTEMBER,
    TO,
    VISITING,
    ScriptedModel,
    State,
    random_table,
    table_from_probs,
)


def _lecture_model() -> ScriptedModel:
    return ScriptedModel(table_from_probs(LECTURE, 12), vocab_size=12)


def _search(model, sources, **kwargs):
    return beam_search(model.step, model.start(sources), batch_size=len(sources), **kwargs)


def test_lecture_greedy_goes_wrong_and_beam_three_finds_the_better_sentence():
    model = _lecture_model()
    (greedy,) = greedy_search(model.step, model.start([0]), batch_size=1, max_len=10)
    assert greedy.tokens == [JANE, IS, GOING, TO, AFRICA, IN, SEPTEMBER]
    greedy_lp = sum(map(math.log, [1.0, 1.0, 0.5, 0.45, 0.5, 0.6, 0.6, 1.0]))
    assert greedy.log_prob == pytest.approx(greedy_lp, abs=1e-6)
    assert greedy.score == pytest.approx(greedy_lp, abs=1e-6)

    (nbest,) = _search(
        model, [0], beam_size=3, max_len=10, length_penalty=LengthPenalty(0.0), nbest=3
    )
    best_lp = sum(map(math.log, [1.0, 1.0, 0.4, 0.9, 0.9, 0.9, 1.0]))
    assert best_lp > greedy_lp
    # worked on paper: "Jane is" ends at step 3, "Jane is going in September" at step 6,
    # and the best at step 7, when the sentence has K=3 finished hypotheses
    assert [h.tokens for h in nbest] == [
        [JANE, IS, VISITING, AFRICA, IN, SEPTEMBER],
        [JANE, IS],
        [JANE, IS, GOING, IN, SEPTEMBER],
    ]
    expected = [best_lp, math.log(0.1), sum(map(math.log, [0.5, 0.3, 0.6, 1.0]))]
    assert [h.log_prob for h in nbest] == pytest.approx(expected, abs=1e-6)
    assert [h.score for h in nbest] == pytest.approx(expected, abs=1e-6)
    assert all(h.finished for h in nbest)


SHORT, LONG = 4, 5
FLIP = {
    (): {SHORT: 0.7, LONG: 0.3},
    (SHORT,): {EOS: 0.6, LONG: 0.4},
    (LONG,): {LONG: 1.0},
    (LONG, LONG): {LONG: 1.0},
}  # "short" (0.42, Ty=2), "short long" (0.28, Ty=3), "long long long" (0.3, Ty=4)


@pytest.mark.parametrize(
    ("alpha", "order"),
    [
        (0.0, [[SHORT], [LONG, LONG, LONG], [SHORT, LONG]]),
        (1.0, [[LONG, LONG, LONG], [SHORT, LONG], [SHORT]]),
    ],
)
def test_length_penalty_flips_the_ranking(alpha, order):
    model = ScriptedModel(table_from_probs(FLIP, 6), vocab_size=6)
    (nbest,) = _search(
        model, [0], beam_size=3, max_len=6, length_penalty=LengthPenalty(alpha), nbest=3
    )
    assert [h.tokens for h in nbest] == order
    by_hand = {
        (SHORT,): math.log(0.7 * 0.6) / 2**alpha,
        (SHORT, LONG): math.log(0.7 * 0.4) / 3**alpha,
        (LONG, LONG, LONG): math.log(0.3) / 4**alpha,
    }
    assert [h.score for h in nbest] == pytest.approx([by_hand[tuple(t)] for t in order], abs=1e-6)


@pytest.mark.parametrize("alpha", [0.0, 0.7, 1.0])
def test_beam_of_width_one_is_exactly_greedy(alpha):
    model = ScriptedModel(random_table(9, seed=11, eos_bias=1.0), vocab_size=9)
    max_lens = torch.tensor([1, 2, 3, 5, 8, 13, 20])
    sources = list(range(7))
    penalty = LengthPenalty(alpha)
    greedy = greedy_search(
        model.step, model.start(sources), batch_size=7, max_len=max_lens, length_penalty=penalty
    )
    beam = _search(model, sources, beam_size=1, max_len=max_lens, length_penalty=penalty)
    assert [h.tokens for h in greedy] == [b.tokens for (b,) in beam]
    assert [h.score for h in greedy] == [b.score for (b,) in beam]
    assert [h.log_prob for h in greedy] == [b.log_prob for (b,) in beam]
    assert [h.finished for h in greedy] == [b.finished for (b,) in beam]
    assert {h.finished for h in greedy} == {True, False}


@pytest.mark.parametrize("alpha", [0.0, 0.7, 1.0])
def test_wide_beam_equals_brute_force_enumeration(alpha):
    real, L = [4, 5, 6], 4  # 3 real tokens + EOS, at most L generated tokens
    model = ScriptedModel(random_table(7, seed=5, scale=1.5), vocab_size=7, source_len=3)
    penalty = LengthPenalty(alpha)
    enumerated = {}
    for n in range(L + 1):
        for body in itertools.product(real, repeat=n):
            finished = n < L
            lps, _ = model.score(0, body, finished=finished)
            enumerated[(body, finished)] = penalty(sum(lps), len(lps))
    K = 4**L
    (nbest,) = _search(model, [0], beam_size=K, max_len=L, length_penalty=penalty, nbest=K)
    found = {(tuple(h.tokens), h.finished): h.score for h in nbest}
    assert found.keys() == enumerated.keys()
    for key, score in enumerated.items():
        assert found[key] == pytest.approx(score, abs=1e-5)
    best = max((k for k in enumerated if k[1]), key=enumerated.get)
    best_found = next(h for h in nbest if h.finished)
    assert (tuple(best_found.tokens), True) == best
    assert best_found.score == pytest.approx(enumerated[best], abs=1e-5)


def test_batch_of_three_equals_three_batches_of_one():
    model = ScriptedModel(random_table(8, seed=2, eos_bias=0.3), vocab_size=8)
    max_lens = torch.tensor([4, 7, 10])
    kwargs = dict(beam_size=3, length_penalty=LengthPenalty(0.7), nbest=3)
    batched = _search(model, [0, 1, 2], max_len=max_lens, **kwargs)
    single = [_search(model, [s], max_len=int(max_lens[s]), **kwargs)[0] for s in range(3)]
    for got, want in zip(batched, single, strict=True):
        assert [h.tokens for h in got] == [h.tokens for h in want]
        assert [h.finished for h in got] == [h.finished for h in want]
        assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-6)
        for g, w in zip(got, want, strict=True):
            assert torch.allclose(g.attention, w.attention)


def _check_against_teacher_forcing(model, sources, results, penalty) -> None:
    for source, nbest in zip(sources, results, strict=True):
        for h in nbest:
            lps, rows = model.score(source, h.tokens, finished=h.finished)
            assert h.token_log_probs == pytest.approx(lps, abs=1e-5)
            assert h.log_prob == pytest.approx(sum(lps), abs=1e-4)
            assert h.score == pytest.approx(penalty(h.log_prob, h.length), abs=1e-6)
            assert h.attention.shape == (h.length, model.source_len)
            assert torch.allclose(h.attention, rows)


def test_nbest_sorted_distinct_and_consistent_with_teacher_forcing():
    model = ScriptedModel(random_table(10, seed=7, eos_bias=0.5), vocab_size=10)
    sources, penalty = [0, 1, 2, 3], LengthPenalty(0.6)
    max_lens = torch.tensor([3, 6, 9, 12])
    results = _search(
        model, sources, beam_size=5, max_len=max_lens, length_penalty=penalty, nbest=4
    )
    for nbest, max_len in zip(results, max_lens.tolist(), strict=True):
        assert len(nbest) == 4
        assert all(isinstance(h, Hypothesis) for h in nbest)
        scores = [h.score for h in nbest]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(h.tokens) for h in nbest}) == len(nbest)
        assert all(h.length <= max_len for h in nbest)
        assert all(h.length == max_len for h in nbest if not h.finished)
        assert all(EOS not in h.tokens for h in nbest)
        assert all(
            math.fsum(h.token_log_probs) == pytest.approx(h.log_prob, abs=1e-4) for h in nbest
        )
    _check_against_teacher_forcing(model, sources, results, penalty)


class ForgetfulState(State):
    """Expands and drops rows, but ignores the beam reordering (the bug the oracle must catch)."""

    def reorder(self, index: torch.Tensor) -> State:
        if index.numel() == len(self.prefixes):
            return self
        return super().reorder(index)


def test_state_is_reordered_with_the_beams():
    model = ScriptedModel(random_table(8, seed=13, eos_bias=-1.0), vocab_size=8)
    sources, penalty = [0, 1, 2], LengthPenalty(1.0)
    kwargs = dict(batch_size=3, beam_size=4, max_len=8, length_penalty=penalty, nbest=4)
    results = beam_search(model.step, model.start(sources), **kwargs)
    _check_against_teacher_forcing(model, sources, results, penalty)
    # the check above can fail: with a state that skips the reorder, the scores go wrong
    broken = beam_search(model.step, ForgetfulState(sources, [(), (), ()]), **kwargs)
    with pytest.raises(AssertionError):
        _check_against_teacher_forcing(model, sources, broken, penalty)


def test_done_sentences_are_dropped_and_rows_shrink():
    model = ScriptedModel(table_from_probs(FLIP, 6), vocab_size=6)
    _search(
        model, [0, 1], beam_size=2, max_len=torch.tensor([1, 6]), length_penalty=LengthPenalty()
    )
    assert model.rows_per_step[0] == 4 and set(model.rows_per_step[1:]) == {2}


def test_without_attention_hypotheses_carry_none():
    model = ScriptedModel(table_from_probs(FLIP, 6), vocab_size=6, with_attention=False)
    (nbest,) = _search(model, [0], beam_size=2, max_len=6, length_penalty=LengthPenalty(), nbest=2)
    assert all(h.attention is None for h in nbest)


def test_bad_arguments_are_rejected():
    model = _lecture_model()
    with pytest.raises(AtentoError, match="beam must be at least 1"):
        _search(model, [0], beam_size=0, max_len=5, length_penalty=LengthPenalty())
    with pytest.raises(AtentoError, match="nbest must be between 1 and the beam width 2, got 3"):
        _search(model, [0], beam_size=2, max_len=5, length_penalty=LengthPenalty(), nbest=3)
    with pytest.raises(AtentoError, match="length"):
        _search(model, [0], beam_size=2, max_len=0, length_penalty=LengthPenalty())


class RecordingState(State):
    """Logs which of expand / reorder / select the search calls."""

    calls: list[str] = []

    def expand(self, k: int) -> State:
        self.calls.append(f"expand {k}")
        return super().expand(k)

    def reorder(self, index: torch.Tensor) -> State:
        self.calls.append("reorder")
        return super().reorder(index)

    def select(self, index: torch.Tensor) -> State:
        self.calls.append("select")
        return super().select(index)


def test_beam_search_expands_once_then_reorders_whole_groups():
    model = ScriptedModel(random_table(8, seed=5, eos_bias=-1.0), vocab_size=8)
    RecordingState.calls = []
    start = RecordingState([0, 1, 2], [(), (), ()])
    beam_search(model.step, start, batch_size=3, beam_size=3, max_len=torch.tensor([2, 7, 4]),
                length_penalty=LengthPenalty(1.0))  # fmt: skip
    # sentences leave at different steps; State.reorder asserts that groups stay whole
    assert RecordingState.calls[0] == "expand 3"
    assert set(RecordingState.calls[1:]) == {"reorder"} and len(RecordingState.calls) > 3
    assert len(set(model.rows_per_step)) > 1
    RecordingState.calls = []
    greedy_search(model.step, RecordingState([0, 1, 2], [(), (), ()]), batch_size=3,
                  max_len=torch.tensor([2, 7, 4]))  # fmt: skip
    assert set(RecordingState.calls) == {"select"}


def test_a_sentence_stops_as_soon_as_it_has_k_finished_hypotheses():
    """fairseq's rule: step 0 finishes one hypothesis, step 1 a second: with K = 2 the search
    stops there, though live beams remain and max_len allows more steps."""
    table = table_from_probs(
        {(): {EOS: 0.5, 4: 0.3, 5: 0.2}, (4,): {EOS: 0.6, 5: 0.4}, (5,): {4: 1.0}}, 6
    )
    model = ScriptedModel(table, vocab_size=6)
    (nbest,) = _search(model, [0], beam_size=2, max_len=10, length_penalty=LengthPenalty(),
                       nbest=2)  # fmt: skip
    assert len(model.rows_per_step) == 2
    assert [h.tokens for h in nbest] == [[], [4]]  # tokens exclude the EOS
