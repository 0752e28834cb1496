"""Heatmaps: one row per output piece (+ EOS), one column per source piece (+ EOS)."""

import pytest
import torch
from PIL import Image

from atento.analysis.heatmap import hypothesis_heatmap, plot_attention
from atento.data.tokenizers import CharTokenizer
from atento.search import Hypothesis

TOK = CharTokenizer("0123456789-abcdefghijklmnopqrstuvwxyz ")


def _hyp(out: str, batch_width: int, finished: bool = True) -> Hypothesis:
    ids = TOK.encode(out)
    rows = len(ids) + finished
    attention = torch.softmax(torch.randn(rows, batch_width), -1)
    return Hypothesis(ids, -1.0, -1.0, [-0.1] * rows, attention, finished)


def _png_shape(path):
    with Image.open(path) as image:
        return int(image.text["atento:rows"]), int(image.text["atento:cols"]), image.size


@pytest.mark.parametrize("finished", [True, False])
def test_one_row_per_output_piece_and_one_column_per_source_piece(tmp_path, finished):
    src, out = "9 apr 74", "1974-04-09"
    hyp = _hyp(out, batch_width=len(src) + 1 + 4, finished=finished)  # 4 padding columns
    heatmap = hypothesis_heatmap(src, hyp, TOK, TOK, tmp_path / "h.png")
    assert heatmap.src_labels == [*src, "</s>"]
    assert heatmap.tgt_labels == [*out] + (["</s>"] if finished else [])
    assert tuple(heatmap.weights.shape) == (len(heatmap.tgt_labels), len(heatmap.src_labels))
    rows, cols, _ = _png_shape(heatmap.path)
    assert (rows, cols) == (len(out) + finished, len(src) + 1)


def test_the_image_grows_with_the_source_and_the_output(tmp_path):
    small = hypothesis_heatmap("9 apr", _hyp("1974", 6), TOK, TOK, tmp_path / "s.png")
    wide = hypothesis_heatmap("9 april 1974 x", _hyp("1974", 15), TOK, TOK, tmp_path / "w.png")
    tall = hypothesis_heatmap("9 apr", _hyp("1974-04-09", 6), TOK, TOK, tmp_path / "t.png")
    (sw, sh), (ww, wh), (tw, th) = (_png_shape(h.path)[2] for h in (small, wide, tall))
    assert ww > sw and wh == sh
    assert th > sh and tw == sw


def test_mismatched_labels_and_missing_attention_are_rejected(tmp_path):
    with pytest.raises(ValueError):
        plot_attention(torch.rand(2, 3), ["a", "b"], ["x", "y"], tmp_path / "x.png")
    hyp = Hypothesis([5], -1.0, -1.0, [-1.0], None, True)
    with pytest.raises(ValueError, match="no attention"):
        hypothesis_heatmap("a", hyp, TOK, TOK, tmp_path / "y.png")
