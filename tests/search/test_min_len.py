"""`min_len`: no EOS before that many generated tokens, in greedy and in beam search (what
transformers calls `min_new_tokens`; the Marian benchmark decodes at equal lengths with it)."""

import pytest

from atento.search import LengthPenalty, beam_search, greedy_search

from .scripted import EOS, IS, JANE, LECTURE, ScriptedModel, random_table, table_from_probs


def _beam(model, sources, **kwargs):
    return beam_search(model.step, model.start(sources), batch_size=len(sources),
                       length_penalty=LengthPenalty(0.0), **kwargs)  # fmt: skip


def test_min_len_keeps_eos_out_of_the_first_tokens():
    model = ScriptedModel(table_from_probs(LECTURE, 12), vocab_size=12)
    (nbest,) = _beam(model, [0], beam_size=3, max_len=10, nbest=3)
    assert [JANE, IS] in [h.tokens for h in nbest]  # EOS after two tokens, without min_len
    (nbest,) = _beam(model, [0], beam_size=3, max_len=10, nbest=3, min_len=3)
    assert all(len(h.tokens) >= 3 for h in nbest)


@pytest.mark.parametrize("min_len", [0, 2, 5])
def test_every_output_is_at_least_min_len_long(min_len):
    model = ScriptedModel(random_table(9, seed=4, eos_bias=2.0), vocab_size=9)
    sources = list(range(6))
    greedy = greedy_search(model.step, model.start(sources), batch_size=6, max_len=8,
                           min_len=min_len)  # fmt: skip
    beams = _beam(model, sources, beam_size=3, max_len=8, nbest=3, min_len=min_len)
    for hyp in [*greedy, *(h for nbest in beams for h in nbest)]:
        assert len(hyp.tokens) >= min_len
        assert EOS not in hyp.tokens
    if min_len == 0:  # the default: the same search as before
        again = greedy_search(model.step, model.start(sources), batch_size=6, max_len=8)
        assert [(h.tokens, h.score) for h in greedy] == [(h.tokens, h.score) for h in again]


def test_min_len_at_max_len_gives_equal_lengths():
    model = ScriptedModel(random_table(9, seed=4, eos_bias=2.0), vocab_size=9)
    beams = _beam(model, list(range(4)), beam_size=4, max_len=6, nbest=4, min_len=6)
    assert all(len(h.tokens) == 6 and not h.finished for nbest in beams for h in nbest)
