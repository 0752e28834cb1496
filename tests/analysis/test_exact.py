"""Exact search (Stahlberg & Byrne 2019) against brute-force enumeration on a tiny vocabulary."""

import itertools
import math

import pytest

from atento.analysis.exact import exact_search
from atento.search import LengthPenalty, beam_search
from search.scripted import EOS, ScriptedModel, random_table, table_from_probs

V, MAX_LEN = 7, 5  # real tokens 4, 5, 6; outputs of up to 4 tokens + EOS


def _brute_force(model, source, penalty, max_len):
    """Every finished output of <= max_len tokens (EOS included), scored by teacher forcing."""
    best_score, best_tokens = -math.inf, None
    for n in range(max_len):
        for tokens in itertools.product(range(4, model.vocab_size), repeat=n):
            lps, _ = model.score(source, list(tokens))
            score = penalty(sum(lps), n + 1)
            if score > best_score:
                best_score, best_tokens = score, list(tokens)
    return best_score, best_tokens


CASES = [(seed, alpha, bias) for seed in (0, 1, 2) for alpha in (0.0, 0.6, 1.0) for bias in
         (-1.0, 0.5)]  # fmt: skip


@pytest.mark.parametrize("seed,alpha,eos_bias", CASES)
def test_exact_search_equals_brute_force(seed, alpha, eos_bias):
    model = ScriptedModel(random_table(V, seed=seed, eos_bias=eos_bias), vocab_size=V)
    penalty = LengthPenalty(alpha)
    for source in range(3):
        want_score, want_tokens = _brute_force(model, source, penalty, MAX_LEN)
        got = exact_search(
            model.step, model.start([source]), max_len=MAX_LEN, length_penalty=penalty
        )
        assert got.complete
        assert got.tokens == want_tokens
        assert got.score == pytest.approx(want_score, abs=1e-6)
        lps, _ = model.score(source, got.tokens)
        assert got.log_prob == pytest.approx(sum(lps), abs=1e-6)


@pytest.mark.parametrize("seed,alpha,eos_bias", CASES)
@pytest.mark.parametrize("beam", [1, 2, 3])
def test_exact_search_never_scores_below_the_beam(seed, alpha, eos_bias, beam):
    model = ScriptedModel(random_table(V, seed=seed, eos_bias=eos_bias), vocab_size=V)
    penalty = LengthPenalty(alpha)
    sources = [0, 1, 2]
    nbest = beam_search(
        model.step, model.start(sources), batch_size=3, beam_size=beam, max_len=MAX_LEN,
        length_penalty=penalty,
    )  # fmt: skip
    for source, [hyp] in zip(sources, nbest, strict=True):
        bound = hyp.score if hyp.finished else -math.inf
        got = exact_search(
            model.step, model.start([source]), max_len=MAX_LEN, length_penalty=penalty,
            lower_bound=bound,
        )  # fmt: skip
        best_score, best_tokens = _brute_force(model, source, penalty, MAX_LEN)
        if got.tokens is None:  # nothing beats the beam: the beam found the model's best
            assert hyp.finished and hyp.score == pytest.approx(best_score, abs=1e-5)
        else:  # a true search error: strictly better than the beam, and the global best
            assert got.score > hyp.score or not hyp.finished
            assert got.tokens == best_tokens


def test_pruning_with_the_beam_bound_expands_fewer_prefixes():
    model = ScriptedModel(random_table(V, seed=4, eos_bias=-1.0), vocab_size=V)
    penalty = LengthPenalty(0.0)
    free = exact_search(model.step, model.start([0]), max_len=MAX_LEN, length_penalty=penalty)
    bounded = exact_search(
        model.step, model.start([0]), max_len=MAX_LEN, length_penalty=penalty,
        lower_bound=free.score - 1e-9,
    )  # fmt: skip
    assert bounded.tokens == free.tokens
    assert bounded.expansions <= free.expansions
    assert free.expansions < sum((V - 4) ** n for n in range(MAX_LEN))  # it did prune


def test_lecture_table_exact_best_and_beam_width_one_is_a_search_error():
    J, I, VIS, GO, TO, AF, IN, SEP = range(4, 12)
    table = {
        (): {J: 1.0}, (J,): {I: 1.0}, (J, I): {GO: 0.5, VIS: 0.4, EOS: 0.1},
        (J, I, VIS): {AF: 0.9, EOS: 0.1}, (J, I, VIS, AF): {IN: 0.9, EOS: 0.1},
        (J, I, VIS, AF, IN): {SEP: 0.9, EOS: 0.1}, (J, I, GO): {TO: 0.45, IN: 0.3, EOS: 0.25},
    }  # fmt: skip
    model = ScriptedModel(table_from_probs(table, 12), vocab_size=12)
    got = exact_search(model.step, model.start([0]), max_len=10, length_penalty=LengthPenalty())
    assert got.tokens == [J, I, VIS, AF, IN, SEP]
    assert got.log_prob == pytest.approx(math.log(0.4 * 0.9**3))


def test_time_limit_returns_an_incomplete_result():
    model = ScriptedModel(random_table(V, seed=0), vocab_size=V)
    got = exact_search(
        model.step, model.start([0]), max_len=MAX_LEN, length_penalty=LengthPenalty(1.0),
        time_limit=0.0,
    )  # fmt: skip
    assert not got.complete and got.tokens is None
