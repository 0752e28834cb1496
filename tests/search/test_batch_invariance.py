"""The same sentences decoded in batches of 1, 7 and 64 give the same n-best lists (fp32).

Batching pads sources to the longest of the batch and drops finished sentences at different
steps, so the floating-point sums behind a score may round differently (a few 1e-7). The
tokens must not change: where two candidates' scores are within 1e-5 of each other, either
order is a valid search result, and the test asserts that tie instead of an order.
"""

from __future__ import annotations

import pytest
import torch

from atento.config import SearchConfig
from atento.inference import Translator
from atento.models.factory import ATTENTION_CHOICES
from atento.models.rnn import RNNSeq2Seq
from atento.models.transformer import TransformerSeq2Seq

V = 23
TIE = 1e-5


def _peaky(model: torch.nn.Module) -> torch.nn.Module:
    """Larger random weights than the init: distinct, confident hypotheses."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.4)
    return model.eval()


def _model(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "transformer":
        return _peaky(TransformerSeq2Seq(src_vocab=V, tgt_vocab=V, d_model=16, heads=4,
                                         ff_size=32, layers=2, dropout=0.1))  # fmt: skip
    return _peaky(RNNSeq2Seq(src_vocab=V, tgt_vocab=V, emb_size=8, hidden_size=12, enc_layers=1,
                             dec_layers=1, cell="gru", dropout=0.1, attention=kind,
                             input_feeding=False, max_src_len=20))  # fmt: skip


def _sources() -> list[list[int]]:
    g = torch.Generator().manual_seed(11)
    lengths = torch.randint(1, 15, (29,), generator=g).tolist()
    return [torch.randint(4, V, (n,), generator=g).tolist() for n in lengths]


def _assert_same_or_tied(a, b) -> None:
    """Two n-best lists of one sentence: equal, or differing only where scores tie."""
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.score == pytest.approx(y.score, abs=TIE)
        if x.tokens != y.tokens:  # a different hypothesis at this rank: it must be a tie
            others = [h for h in a if h.tokens == y.tokens]
            assert others and abs(others[0].score - x.score) <= TIE, (x.tokens, y.tokens)


@pytest.mark.parametrize("kind", ["transformer", *ATTENTION_CHOICES])
@pytest.mark.parametrize("beam", [1, 4])
def test_batch_size_does_not_change_the_output(kind, beam):
    model, sources = _model(kind), _sources()
    search = SearchConfig(beam=beam, nbest=beam, max_len_a=1.0, max_len_b=4)
    results = {}
    for size in (1, 7, 64):
        translator = Translator(model, None, None, search).with_search(batch_size=size)
        results[size] = translator.translate_ids(sources)
    exact = 0
    for i in range(len(sources)):
        for size in (7, 64):
            _assert_same_or_tied(results[1][i], results[size][i])
            exact += [h.tokens for h in results[1][i]] == [h.tokens for h in results[size][i]]
    assert exact >= 2 * len(sources) - 2  # ties that reorder an n-best list are rare
