"""UNK is generated unless the caller bans it (`unk_id`); `SearchStats` counts the steps at
which the banned UNK would have been chosen. The scripted model makes UNK the best token."""

import pytest
import torch

from atento.search import LengthPenalty, beam_search, greedy_search
from atento.search.step import SearchStats

from .scripted import EOS, UNK, ScriptedModel, table_from_probs

# UNK first (0.5) and, after 4, UNK again (0.6); unlisted prefixes end with EOS
PROBS = {(): {UNK: 0.5, 4: 0.3, 5: 0.2}, (4,): {UNK: 0.6, EOS: 0.4}}


def _model() -> ScriptedModel:
    return ScriptedModel(table_from_probs(PROBS, 7), vocab_size=7)


def test_greedy_outputs_unk_unless_banned_and_counts_the_banned_steps():
    model = _model()
    (allowed,) = greedy_search(model.step, model.start([0]), batch_size=1, max_len=5)
    assert allowed.tokens == [UNK] and allowed.finished
    stats = SearchStats()
    (banned,) = greedy_search(model.step, model.start([0]), batch_size=1, max_len=5,
                              unk_id=UNK, stats=stats)  # fmt: skip
    assert banned.tokens == [4] and banned.finished  # UNK was the argmax at both steps
    assert stats.unk_banned_steps == 2
    assert banned.log_prob == pytest.approx(torch.tensor([0.3, 0.4]).log().sum().item())


@pytest.mark.parametrize("beam", [1, 2, 3])
def test_beam_never_outputs_a_banned_unk(beam):
    model = _model()
    kwargs = dict(batch_size=2, beam_size=beam, max_len=5, length_penalty=LengthPenalty(0.0),
                  nbest=beam)  # fmt: skip
    allowed = beam_search(model.step, model.start([0, 1]), **kwargs)
    assert all(hyps[0].tokens == [UNK] for hyps in allowed)
    stats = SearchStats()
    banned = beam_search(model.step, model.start([0, 1]), unk_id=UNK, stats=stats, **kwargs)
    assert all(UNK not in h.tokens for hyps in banned for h in hyps)
    best = [hyps[0].tokens for hyps in banned]
    assert best == ([[4], [4]] if beam == 1 else [[5], [5]])  # P(5 EOS) .2 > P(4 EOS) .12
    # per sentence, UNK was the best extension at step 1; at step 2 only for the beam of one
    # (from "4": .3 * .6 = .18), since a wider beam keeps "5" whose EOS (.2) beats it
    assert stats.unk_banned_steps == (4 if beam == 1 else 2)


def test_one_stats_object_adds_up_over_searches():
    model, stats = _model(), SearchStats()
    for _ in range(3):
        greedy_search(model.step, model.start([0]), batch_size=1, max_len=5, unk_id=UNK,
                      stats=stats)  # fmt: skip
    assert stats.unk_banned_steps == 6
    greedy_search(model.step, model.start([0]), batch_size=1, max_len=5, stats=stats)
    assert stats.unk_banned_steps == 6  # nothing banned, nothing counted
