"""The beam trace: what the search kept, finished and pruned, checked against its outputs."""

import math

import pytest

from atento.search import LengthPenalty, beam_search
from atento.search.trace import FINISHED, KEPT, PRUNED, BeamTrace

from .scripted import (
    EOS,
    GOING,
    JANE,
    LECTURE,
    VISITING,
    ScriptedModel,
    random_table,
    table_from_probs,
)


def _search(model, sources, trace=None, **kwargs):
    return beam_search(
        model.step, model.start(sources), batch_size=len(sources), trace=trace, **kwargs
    )


def _path(steps, t, slot):
    """Tokens of kept beam `slot` at step t, read back through the parents."""
    tokens = []
    while t >= 0:
        (cand,) = [c for c in steps[t].candidates if c.status == KEPT and c.slot == slot]
        tokens.append(cand.token)
        slot, t = cand.parent, t - 1
    return tokens[::-1]


def test_lecture_trace_step_by_step():
    model = ScriptedModel(table_from_probs(LECTURE, 12), vocab_size=12)
    trace = BeamTrace()
    (nbest,) = _search(
        model, [0], trace, beam_size=3, max_len=10, length_penalty=LengthPenalty(0.0), nbest=3
    )
    steps = trace.sentences[0]
    assert trace.beam_size == 3
    # step 0: only "Jane" has probability > 0, so one candidate, kept in slot 0
    assert [(c.token, c.status, c.slot) for c in steps[0].candidates] == [(JANE, KEPT, 0)]
    # step 2: "going" (0.5) and "visiting" (0.4) continue; "Jane is <eos>" (0.1) finishes
    by_token = {c.token: c for c in steps[2].candidates}
    assert by_token[GOING].status == KEPT and by_token[GOING].slot == 0
    assert by_token[VISITING].status == KEPT and by_token[VISITING].slot == 1
    assert by_token[EOS].status == FINISHED
    assert by_token[EOS].log_prob == pytest.approx(math.log(0.1), abs=1e-6)
    # every finished hypothesis is a finished candidate with its score and step
    finished = [(t, c) for t, s in enumerate(steps) for c in s.candidates if c.status == FINISHED]
    assert len(finished) == 3
    for hyp in nbest:
        (t, cand) = [(t, c) for t, c in finished if c.score == pytest.approx(hyp.score)][0]
        assert t + 1 == hyp.length
        assert _path(steps, t - 1, cand.parent) == hyp.tokens


@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_trace_matches_the_search_and_changes_nothing(alpha):
    model = ScriptedModel(random_table(9, seed=11, eos_bias=1.0), vocab_size=9)
    penalty = LengthPenalty(alpha)
    kwargs = dict(beam_size=4, max_len=7, length_penalty=penalty, nbest=4)
    plain = _search(model, [0, 1, 2], **kwargs)
    trace = BeamTrace()
    traced = _search(model, [0, 1, 2], trace, **kwargs)
    assert [[(h.tokens, h.score) for h in hs] for hs in traced] == [
        [(h.tokens, h.score) for h in hs] for hs in plain
    ]
    for b, hyps in enumerate(traced):
        steps = trace.sentences[b]
        for t, step in enumerate(steps):
            assert len(step.candidates) <= 8  # the 2K scored
            lps = [c.log_prob for c in step.candidates]
            assert lps == sorted(lps, reverse=True)  # best first
            kept = [c for c in step.candidates if c.status == KEPT]
            assert sorted(c.slot for c in kept) == list(range(len(kept)))
            for c in step.candidates:
                assert c.score == pytest.approx(penalty(c.log_prob, t + 1))
                if c.status == PRUNED and c.token != EOS:  # ranked below every kept beam
                    assert all(c.log_prob <= k.log_prob for k in kept)
        # a hypothesis that finished with EOS is a finished candidate whose path is its tokens
        for hyp in hyps:
            if not hyp.finished:
                continue
            t = hyp.length - 1
            matches = [
                c for c in steps[t].candidates
                if c.status == FINISHED and c.score == pytest.approx(hyp.score)
                and (t == 0 or _path(steps, t - 1, c.parent) == hyp.tokens)
            ]  # fmt: skip
            assert matches, (b, hyp.tokens)
