"""The error analysis and exact search with a real trained model (the `toy_run` fixture)."""

import pytest

from atento.analysis.search_errors import analyse_beams_several, check_exact
from atento.config_io import load_config
from atento.data.corpus import load_split
from atento.rundir import load_run


@pytest.fixture(scope="module")
def setup(toy_run):
    loaded = load_run(toy_run)
    pairs = load_split(load_config(toy_run / "config.yaml").data, "test")[:8]
    src = loaded.src_tok.encode_batch([s for s, _ in pairs])
    ref = [[r] for r in loaded.tgt_tok.encode_batch([t for _, t in pairs])]  # one each
    return loaded, src, ref


@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_rescored_outputs_match_the_beams_own_scores(setup, alpha):
    loaded, src, ref = setup
    translator = loaded.translator().with_search(alpha=alpha)
    reports = analyse_beams_several(translator, src, ref, [1, 4])
    for report in reports:
        hyps = translator.with_search(beam=report.beam, nbest=1).translate_ids(src)
        assert report.beam in (1, 4) and report.alpha == alpha
        for v, [h] in zip(report.verdicts, hyps, strict=True):
            assert v.output_ids == h.tokens
            assert v.output_score == pytest.approx(h.score, abs=1e-4)
            assert v.fault in ("none", "search", "model")
    # references are scored once and shared: identical across widths
    assert [v.reference_score for v in reports[0].verdicts] == [
        v.reference_score for v in reports[1].verdicts
    ]


def test_exact_search_on_the_real_model_never_loses_to_the_beam(setup):
    loaded, src, ref = setup
    translator = loaded.translator().with_search(alpha=0.0, beam=2)
    [report] = analyse_beams_several(translator, src, ref, [2])
    summary = check_exact(translator, report, max_source_len=100, seconds=2.0)
    assert summary["checked"] == len(src)
    for v in report.verdicts:
        assert v.exact_score is not None and v.exact_score >= v.output_score - 1e-6
        assert v.exact_better == (v.exact_score > v.output_score + 1e-5)
