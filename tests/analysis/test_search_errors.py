"""The lecture's error analysis against a scripted model whose probabilities are on paper."""

import math

import pytest

from atento.analysis.scoring import SequenceScore
from atento.analysis.search_errors import (
    MODEL,
    NONE,
    SEARCH,
    ErrorReport,
    Verdict,
    advice,
    analyse,
    blame,
)
from atento.search import LengthPenalty, beam_search
from search.scripted import (
    AFRICA,
    GOING,
    IN,
    IS,
    JANE,
    LECTURE,
    SEPTEMBER,
    TO,
    VISITING,
    ScriptedModel,
    table_from_probs,
)

VISITING_AFRICA = [JANE, IS, VISITING, AFRICA, IN, SEPTEMBER]  # P = 0.4 * 0.9^3 = 0.2916
GOING_TO_AFRICA = [JANE, IS, GOING, TO, AFRICA, IN, SEPTEMBER]  # greedy: P = 0.0405
GOING_IN = [JANE, IS, GOING, IN, SEPTEMBER]  # P = 0.5 * 0.3 * 0.6 = 0.09

# alpha flips the verdict: greedy says "A" (P 0.6, Ty 2); the reference "B C D" has P 0.4, Ty 4
A, B, C, D = 4, 5, 6, 7
FLIP = {(): {A: 0.6, B: 0.4}, (B,): {C: 1.0}, (B, C): {D: 1.0}}


def _run(table, vocab, references, *, beam, alpha) -> ErrorReport:
    model = ScriptedModel(table_from_probs(table, vocab), vocab_size=vocab)
    penalty = LengthPenalty(alpha)

    def decode(sources):
        nbest = beam_search(
            model.step, model.start([s[0] for s in sources]), batch_size=len(sources),
            beam_size=beam, max_len=10, length_penalty=penalty,
        )  # fmt: skip
        return [hyps[0] for hyps in nbest]

    def score(sources, outputs, finished):
        return [
            SequenceScore.from_token_log_probs(
                model.score(s[0], y, finished=f)[0], penalty, finished=f
            )
            for s, y, f in zip(sources, outputs, finished, strict=True)
        ]

    sources = [[i] for i in range(len(references))]
    return analyse(sources, references, decode=decode, score=score, beam=beam, alpha=alpha)


def test_reference_outscoring_the_greedy_output_is_a_search_error():
    report = _run(LECTURE, 12, [VISITING_AFRICA], beam=1, alpha=0.0)
    [v] = report.verdicts
    assert v.output_ids == GOING_TO_AFRICA
    assert v.reference_log_prob == pytest.approx(math.log(0.2916))
    assert v.output_log_prob == pytest.approx(math.log(0.0405))
    assert v.fault == SEARCH
    assert (report.errors, report.search_errors, report.model_errors) == (1, 1, 0)
    assert report.search_error_fraction == 1.0
    assert "beam" in advice(report)


def test_output_outscoring_the_reference_is_a_model_error():
    report = _run(LECTURE, 12, [GOING_IN], beam=3, alpha=0.0)  # the beam finds the best
    [v] = report.verdicts
    assert v.output_ids == VISITING_AFRICA
    assert v.reference_score == pytest.approx(math.log(0.09))
    assert v.fault == MODEL
    assert report.search_error_fraction == 0.0
    assert "model" in advice(report) and "data" in advice(report)


def test_identical_output_is_no_error():
    report = _run(LECTURE, 12, [VISITING_AFRICA], beam=3, alpha=0.0)
    assert report.verdicts[0].fault == NONE
    assert report.errors == 0 and report.search_error_fraction == 0.0
    assert advice(report).startswith("No errors")


@pytest.mark.parametrize(
    "alpha,expected",
    [(0.0, MODEL), (1.0, SEARCH)],  # log .6 > log .4, but log(.6)/2 < log(.4)/4
)
def test_length_normalisation_flips_the_verdict(alpha, expected):
    report = _run(FLIP, 8, [[B, C, D]], beam=1, alpha=alpha)
    [v] = report.verdicts
    assert v.output_ids == [A]  # greedy ignores alpha when choosing
    assert v.output_score == pytest.approx(math.log(0.6) / 2**alpha)
    assert v.reference_score == pytest.approx(math.log(0.4) / 4**alpha)
    assert v.fault == expected


def test_blame_rules():
    assert blame([4, 5], -1.0, [4, 5], -9.0) == NONE  # identical ids, whatever the scores
    assert blame([4], -2.0, [5], -1.0) == SEARCH
    assert blame([4], -1.0, [5], -2.0) == MODEL
    assert blame([4], -1.0, [5], -1.0) == MODEL  # a tie: the search found an equal output


def test_summary_has_the_contract_fields_and_mixed_counts():
    def verdict(i, fault, gap):
        return Verdict(i, [1], [4], [5], gap, 0.0, gap, 0.0, True, fault)

    report = ErrorReport(
        5, 0.7, [verdict(0, SEARCH, 1.0), verdict(1, MODEL, -3.0), verdict(2, SEARCH, 0.5),
                 verdict(3, NONE, 0.0)],
    )  # fmt: skip
    summary = report.summary()
    for key in ("sentences", "errors", "search_errors", "model_errors", "search_error_fraction",
                "beam", "alpha"):  # fmt: skip
        assert key in summary
    assert (summary["sentences"], summary["errors"]) == (4, 3)
    assert (summary["search_errors"], summary["model_errors"]) == (2, 1)
    assert summary["search_error_fraction"] == pytest.approx(2 / 3, abs=1e-4)
    assert [v.index for v in report.worst(2)] == [1, 0]


def _report(*faults: str) -> ErrorReport:
    return ErrorReport(
        5,
        0.7,
        [Verdict(i, [1], [4], [5], 0.0, 0.0, 0.0, 0.0, True, f) for i, f in enumerate(faults)],
    )


def _exact(checked: int, search_errors: int, timeouts: int = 0) -> dict:
    return {"checked": checked, "search_errors": search_errors, "timeouts": timeouts}


def test_advice_weighs_what_exact_search_found():
    only_model = _report(MODEL, MODEL, NONE, NONE)
    plain = advice(only_model)
    assert plain.startswith("100% of the errors are model errors") and "will not help" in plain
    # exact search shows the beam misses the model's best output: no "will not help"
    text = advice(only_model, _exact(4, 2))
    assert "will not help" not in text
    assert "in 2 of 4 short sentences (50%)" in text and "a wider beam would change" in text
    assert "Work on the model first" in text
    confirmed = advice(only_model, _exact(4, 0, timeouts=1))
    assert (
        "will not help; exact search found no better output in the 4 short sentences" in confirmed
    )
    assert "1 timed out" in confirmed
    search = advice(_report(SEARCH, SEARCH, MODEL), _exact(3, 1))
    assert "Increase the beam width" in search and "Exact search agrees: " in search
    assert "others" in advice(_report(SEARCH), _exact(2, 0))
    no_errors = advice(_report(NONE), _exact(1, 1))
    assert no_errors.startswith("No errors") and "Yet exact search found" in no_errors
    assert advice(only_model, _exact(0, 0)) == plain  # nothing short enough was checked
