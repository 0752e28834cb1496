"""One model, many callers: decoding options are call arguments, so concurrent translations
with different settings give exactly the serial results; worker threads never change the
calling thread's torch thread count."""

from __future__ import annotations

import dataclasses
import threading

import pytest
import torch

from atento.config import SearchConfig
from atento.inference import Translator
from atento.models.base import DecodeOptions
from atento.models.rnn import RNNSeq2Seq
from atento.models.transformer import TransformerSeq2Seq

V = 19


def _peaky(model: torch.nn.Module) -> torch.nn.Module:
    """Larger random weights than the init, so hypotheses differ between settings."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.3)
    return model.eval()


def _transformer() -> TransformerSeq2Seq:
    torch.manual_seed(0)
    return _peaky(TransformerSeq2Seq(src_vocab=V, tgt_vocab=V, d_model=16, heads=4, ff_size=32,
                                     layers=2, dropout=0.1))  # fmt: skip


def _rnn() -> RNNSeq2Seq:
    torch.manual_seed(0)
    return _peaky(RNNSeq2Seq(src_vocab=V, tgt_vocab=V, emb_size=8, hidden_size=10, enc_layers=1,
                             dec_layers=2, cell="lstm", dropout=0.1, attention="additive",
                             input_feeding=True, max_src_len=20))  # fmt: skip


def _sources() -> list[list[int]]:
    g = torch.Generator().manual_seed(7)
    lengths = torch.randint(1, 12, (9,), generator=g).tolist()
    return [torch.randint(4, V, (n,), generator=g).tolist() for n in lengths]


def _translator(model: torch.nn.Module) -> Translator:
    search = SearchConfig(beam=1, nbest=1, batch_size=4, max_len_a=1.0, max_len_b=5)
    return Translator(model, None, None, search)


# (search changes, decoding options): 8 settings per model, one thread each
TRANSFORMER_SETTINGS = [
    ({"beam": 1}, {}),
    ({"beam": 1}, {"attention": True, "layer": 0, "head": 2}),
    ({"beam": 3, "nbest": 3}, {}),
    ({"beam": 3, "nbest": 2}, {"attention": True}),
    ({"beam": 5, "nbest": 5}, {"attention": True, "layer": 1, "head": 0}),
    ({"beam": 5}, {"use_cache": False}),
    ({"beam": 3, "batch_size": 2}, {"attention": True, "layer": 0}),
    ({"beam": 5, "nbest": 3, "batch_size": 3}, {"attention": True, "layer": -2, "head": 3}),
]
RNN_SETTINGS = [
    ({"beam": 1}, {}),
    ({"beam": 1}, {"attention": True}),
    ({"beam": 3, "nbest": 3}, {}),
    ({"beam": 3, "nbest": 2}, {"attention": True}),
    ({"beam": 5, "nbest": 5}, {"attention": True}),
    ({"beam": 5}, {}),
    ({"beam": 3, "batch_size": 2}, {"attention": True}),
    ({"beam": 5, "nbest": 3, "batch_size": 3}, {"attention": True, "layer": 0}),
]


def _assert_same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for hyps_a, hyps_b in zip(a, b, strict=True):
        assert [h.tokens for h in hyps_a] == [h.tokens for h in hyps_b]
        assert [h.score for h in hyps_a] == [h.score for h in hyps_b]
        assert [h.token_log_probs for h in hyps_a] == [h.token_log_probs for h in hyps_b]
        for x, y in zip(hyps_a, hyps_b, strict=True):
            assert (x.attention is None) == (y.attention is None)
            assert x.attention is None or torch.equal(x.attention, y.attention)


@pytest.mark.parametrize(
    "make,settings", [(_transformer, TRANSFORMER_SETTINGS), (_rnn, RNN_SETTINGS)], ids=["tf", "rnn"]
)
def test_concurrent_calls_on_one_model_equal_serial_calls(make, settings):
    model, sources = make(), _sources()
    base = _translator(model)
    translators = [
        base.with_search(**search).with_options(**options) for search, options in settings
    ]
    serial = [t.translate_ids(sources) for t in translators]
    assert len({str([h.tokens for hs in r for h in hs]) for r in serial}) > 2  # varied outputs
    assert any(r[0][0].attention is not None for r in serial)
    assert any(r[0][0].attention is None for r in serial)

    barrier, results, errors = threading.Barrier(len(translators)), {}, []

    def run(i: int, translator: Translator) -> None:
        try:
            torch.set_num_threads(1)  # as the serial calls ran: same kernels, same sums
            barrier.wait()
            results[i] = [translator.translate_ids(sources) for _ in range(2)]
        except Exception as exc:  # reported below, in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, t)) for i, t in enumerate(translators)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for i, expected in enumerate(serial):
        for got in results[i]:
            _assert_same(got, expected)


def test_workers_set_their_own_thread_count_once_and_never_the_callers(monkeypatch):
    model, sources = _transformer(), _sources() * 3
    translator = _translator(model).with_search(beam=3, nbest=2, batch_size=3)
    one = translator.translate_ids(sources)
    calls: list[tuple[int, int]] = []
    real = torch.set_num_threads
    before = torch.get_num_threads()
    real(2)
    try:
        monkeypatch.setattr(
            torch, "set_num_threads", lambda n: (calls.append((threading.get_ident(), n)), real(n))
        )
        two = translator.with_search(workers=2).translate_ids(sources)
        assert torch.get_num_threads() == 2  # the calling thread's count is unchanged
    finally:
        real(before)
    callers = {ident for ident, _ in calls}
    assert threading.get_ident() not in callers  # never set on the calling thread
    assert len(callers) == len(calls) == 2  # once per worker thread (the pool's initializer)
    assert {n for _, n in calls} == {1}  # two threads shared out between two workers
    _assert_same(two, one)


def test_translators_are_immutable_and_need_an_eval_model():
    model = _rnn()
    translator = _translator(model)
    shown = translator.with_attention()
    assert shown.options == DecodeOptions(attention=True) and not translator.attention
    with pytest.raises(dataclasses.FrozenInstanceError):
        translator.options = DecodeOptions()  # type: ignore[misc]
    with pytest.raises(ValueError, match="one"):
        translator.with_options(head=1)  # the RNN has one attention
    with pytest.raises(ValueError, match="out of range"):
        _translator(_transformer()).with_options(layer=5)
    model.train()
    with pytest.raises(ValueError, match="eval mode"):
        translator.translate_ids([[5, 6]])
