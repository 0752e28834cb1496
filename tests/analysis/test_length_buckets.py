"""BLEU by source length: bucketing, per-bucket sacreBLEU, the plot."""

import pytest

from atento.analysis.length import LengthBucket, bleu_by_length, parse_edges, plot_bleu_by_length
from atento.errors import AtentoError

REF = "a man is riding a red bike down the street"


def test_buckets_by_source_words_with_per_bucket_bleu():
    sources = ["un deux", "un deux trois", "w " * 5, "w " * 12, ""]
    refs = [REF] * 5
    hyps = [REF, REF, "nothing in common here at all", REF, REF]
    buckets = bleu_by_length(sources, hyps, refs, edges=(3, 10))
    assert [(b.low, b.high, b.sentences) for b in buckets] == [(1, 3, 3), (4, 10, 1), (11, None, 1)]
    assert buckets[0].bleu == pytest.approx(100.0)  # the empty source joins the first bucket
    assert buckets[1].bleu == pytest.approx(0.0)
    assert buckets[2].to_json() == {"bounds": [11, None], "sentences": 1, "bleu": 100.0}


def test_empty_buckets_are_left_out():
    buckets = bleu_by_length(["a b"] * 2, [REF] * 2, [REF] * 2, edges=(5, 10, 20))
    assert len(buckets) == 1 and buckets[0].sentences == 2


@pytest.mark.parametrize("text", ["", "10,5", "0,3", "a,b", "3,3"])
def test_bad_edges_are_user_errors(text):
    with pytest.raises(AtentoError):
        parse_edges(text)


def test_plot_of_two_systems_is_a_png(tmp_path):
    systems = {
        "attention": [LengthBucket(1, 10, 5, 30.0), LengthBucket(11, None, 3, 28.0)],
        "no attention": [LengthBucket(1, 10, 5, 25.0), LengthBucket(11, None, 3, 12.0)],
    }
    path = plot_bleu_by_length(systems, tmp_path / "sub" / "len.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
