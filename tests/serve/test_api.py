"""`atento.load(run).translate(...)`: outputs, n-best, attention, traces and clear errors."""

import math

import pytest
from PIL import Image

import atento
from atento.errors import AtentoError
from atento.rundir import load_run

from .conftest import DATES


@pytest.fixture(scope="module")
def model(tf_run):
    return atento.load(tf_run)


def test_translate_matches_the_translator_and_carries_everything(model, tf_run):
    out = model.translate(DATES, beam=3, nbest=3, alpha=0.6)
    reference = load_run(tf_run).translator().with_search(beam=3, nbest=3, alpha=0.6)
    expected = reference.translate(DATES)
    assert [t.source for t in out] == DATES
    for t, hyps in zip(out, expected, strict=True):
        assert len(t.nbest) == 3
        assert [o.tokens for o in t.nbest] == [h.tokens for h in hyps]
        assert [o.score for o in t.nbest] == [h.score for h in hyps]
        assert t.text == t.nbest[0].text == model.run.tgt_tok.decode(hyps[0].tokens)
        assert t.score == max(o.score for o in t.nbest)
        for o in t.nbest:
            assert len(o.token_log_probs) == len(o.tokens) + (1 if o.finished else 0)
            assert math.fsum(o.token_log_probs) == pytest.approx(o.log_prob, abs=1e-4)
            assert o.score == pytest.approx(o.log_prob / len(o.token_log_probs) ** 0.6)
            assert "".join(o.pieces) == "".join(model.run.tgt_tok.id_to_piece(i) for i in o.tokens)
            assert o.attention is None


def test_attention_rows_and_columns_are_labelled_and_sum_to_one(model):
    (t,) = model.translate(DATES[0], beam=2, attention=True)
    best = t.best
    assert t.source_pieces[-1] == "</s>" and len(t.source_pieces) == len(DATES[0]) + 1
    assert tuple(best.attention.shape) == (len(best.attention_rows), len(t.source_pieces))
    assert best.attention.sum(-1).tolist() == pytest.approx([1.0] * best.attention.size(0), 1e-4)
    (head0,) = model.translate(DATES[0], beam=2, attention=True, layer=0, head=1)
    assert head0.tokens == best.tokens  # the view changes the weights, never the output
    assert not head0.attention.equal(best.attention)


def test_search_trace_names_pieces_and_ends_in_the_nbest(model):
    record = model.search_trace(DATES[1], beam=3, alpha=0.6)
    assert record["beam_size"] == 3 and record["alpha"] == 0.6
    (t,) = model.translate(DATES[1], beam=3, nbest=3, alpha=0.6)
    assert [n["text"] for n in record["nbest"]] == [o.text for o in t.nbest]
    statuses = {c["status"] for s in record["steps"] for c in s["candidates"]}
    assert statuses <= {"kept", "finished", "pruned"} and "kept" in statuses
    for step in record["steps"]:
        assert len(step["candidates"]) <= 6
        for c in step["candidates"]:
            assert c["piece"] == model.run.tgt_tok.id_to_piece(c["token"])


def test_plot_attention_writes_a_png(model, tmp_path):
    path = model.plot_attention(DATES[2], tmp_path / "a.png", layer=-1)
    image = Image.open(path)
    (t,) = model.translate(DATES[2], attention=True)
    assert int(image.text["atento:cols"]) == len(t.source_pieces)
    assert int(image.text["atento:rows"]) == len(t.best.attention_rows)


def test_info_describes_the_run(model):
    info = model.info()
    assert info["arch"] == "transformer" and info["layers"] == 2 and info["heads"] == 4
    assert info["parameters"] == sum(p.numel() for p in model.run.model.parameters())
    assert info["step"] in (10, 20)  # the best of the two validations


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(beam=0), "beam must be at least 1"),
        (dict(beam=2, nbest=3), "nbest must be between 1 and the beam width 2"),
        (dict(alpha=-1.0), "alpha must be >= 0"),
        (dict(layer=5), "layer 5 out of range"),
        (dict(head=9), "head 9 out of range"),
    ],
)
def test_bad_settings_are_one_line_errors(model, kwargs, message):
    with pytest.raises(AtentoError, match=message):
        model.translate(DATES[0], **kwargs)


def test_bad_sentences_and_runs(model, tmp_path):
    with pytest.raises(AtentoError, match="sentence 1 is empty"):
        model.translate(["ok", "  "])
    with pytest.raises(AtentoError, match="no sentences"):
        model.translate([])
    with pytest.raises(AtentoError, match="run directory not found"):
        atento.load(tmp_path / "missing")
