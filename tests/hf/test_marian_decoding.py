"""Decoding an imported Marian against transformers' `generate` on the same weights.

Greedy search is the same rule in both. Beam search is the same rule (the top 2K candidates,
EOS among the top K finishes, score = log P / Ty^alpha with Ty counting the EOS) when
transformers stops a sentence at K finished hypotheses (`early_stopping=True`) and nothing
reaches the maximum length. Where the rules differ, the tests below check the difference:
- `early_stopping=False` (transformers' default and opus-mt's): transformers keeps searching
  after K hypotheses finish while a live beam could still beat the worst of them, so its best
  score is never below atento's (atento stops there, as fairseq does);
- the maximum length: transformers forces EOS as the last token (`forced_eos_token_id`, set in
  opus-mt's configs) where atento returns the unfinished hypothesis; without the forced EOS,
  both return the same best hypothesis at the maximum length;
- transformers' length counts the decoder's start token (`max_length` = atento's + 1).
"""

from __future__ import annotations

from functools import partial

import pytest
import torch

from atento.rundir import load_run
from atento.search import LengthPenalty, beam_search, greedy_search

from .marian_models import SOURCES, hf_model, hf_tokenizer, import_run, marian_dir

pytest.importorskip("transformers")

MORE = [*SOURCES, "Käse", "der Junge läuft über die Straße der Hund spielt", "Wasser weiß"]


@pytest.fixture(scope="module", params=[0.0, 3.0, -3.0], ids=["eos+0", "eos+3", "eos-3"])
def pair(request, tmp_path_factory):
    """(transformers' model and tokenizer, the imported atento run) for one EOS bias: +3
    ends outputs early (some right away), -3 makes them longer."""
    directory = marian_dir(tmp_path_factory, eos_bias=request.param)
    run = import_run(directory, directory.parent / f"run{request.param}")
    return hf_model(directory), hf_tokenizer(directory), load_run(run, device="cpu")


def hf_generate(model, tok, sources, **kwargs):
    """(token lists without the start token, EOS and padding; finished flags; scores)."""
    batch = tok(sources, return_tensors="pt", padding=True)
    settings = dict(do_sample=False, bad_words_ids=[[tok.pad_token_id]],
                    return_dict_in_generate=True, output_scores=True)  # fmt: skip
    with torch.no_grad():
        out = model.generate(**batch, **{**settings, **kwargs})
    tokens, finished = [], []
    for row in out.sequences.tolist():
        row = row[1:]  # the decoder start token
        done = tok.eos_token_id in row
        row = row[: row.index(tok.eos_token_id)] if done else row
        tokens.append([t for t in row if t != tok.pad_token_id])
        finished.append(done)
    scores = getattr(out, "sequences_scores", None)
    return tokens, finished, None if scores is None else scores.tolist()


def atento_search(run, sources, *, beam=1, alpha=1.0, max_len=30, nbest=1, min_len=0):
    """atento's greedy (beam 1) or beam search over the run's model, with the tokenizers'
    special ids (EOS 0, the decoder starting from PAD)."""
    model, src_tok = run.model, run.tokenizers["src"]
    ids = [src_tok.encode(s) + [src_tok.eos_id] for s in sources]
    width = max(map(len, ids))
    src = torch.tensor([i + [src_tok.pad_id] * (width - len(i)) for i in ids])
    mask = torch.tensor([[True] * len(i) + [False] * (width - len(i)) for i in ids])
    tgt = run.tokenizers["tgt"]
    specials = dict(bos_id=tgt.bos_id, eos_id=tgt.eos_id, pad_id=tgt.pad_id, min_len=min_len)
    with torch.no_grad():
        state = model.init_state(model.encode(src, mask))
        if beam == 1:
            return [[h] for h in greedy_search(model.step, state, batch_size=len(ids),
                                               max_len=max_len, **specials)]  # fmt: skip
        return beam_search(partial(model.step), state, batch_size=len(ids), beam_size=beam,
                           max_len=max_len, length_penalty=LengthPenalty(alpha), nbest=nbest,
                           **specials)  # fmt: skip


def test_greedy_equals_generate(pair):
    model, tok, run = pair
    ref, done, _ = hf_generate(model, tok, MORE, max_length=31, forced_eos_token_id=None)
    mine = atento_search(run, MORE, max_len=30)
    assert [h[0].tokens for h in mine] == ref
    assert [h[0].finished for h in mine] == done


def test_greedy_at_the_maximum_length_differs_by_the_forced_eos(pair):
    model, tok, run = pair
    ref, done, _ = hf_generate(model, tok, MORE, max_length=6)  # forced_eos_token_id=0
    mine = atento_search(run, MORE, max_len=5)
    for (hyp,), tokens, finished in zip(mine, ref, done, strict=True):
        if hyp.finished:  # EOS by itself: the same output
            assert (hyp.tokens, finished) == (tokens, True)
        else:  # atento returns 5 tokens, unfinished; transformers forces EOS as the fifth
            assert finished and hyp.tokens[:-1] == tokens


@pytest.mark.parametrize("beam, alpha", [(2, 1.0), (4, 1.0), (4, 0.0), (5, 0.6)])
def test_beam_equals_generate_with_early_stopping(pair, beam, alpha):
    """The best hypothesis is the same. The n-best lists are the same unless EOS candidates
    overfill a sentence's list at its last step: atento fills the free places in rank order
    and keeps the earlier ones, transformers keeps the K best scores of old and new (so its
    scores, sorted, are never below atento's)."""
    model, tok, run = pair
    ref, done, scores = hf_generate(
        model, tok, MORE, num_beams=beam, early_stopping=True, length_penalty=alpha,
        max_length=41, forced_eos_token_id=None, num_return_sequences=beam,
    )  # fmt: skip
    mine = atento_search(run, MORE, beam=beam, alpha=alpha, max_len=40, nbest=beam)
    same = 0
    for i, nbest in enumerate(mine):
        assert all(h.finished for h in nbest)  # nothing reached the maximum length
        got, want = ref[i * beam : (i + 1) * beam], scores[i * beam : (i + 1) * beam]
        assert nbest[0].tokens == got[0], MORE[i]
        assert nbest[0].score == pytest.approx(want[0], abs=1e-4)
        if [h.tokens for h in nbest] == got:
            same += 1
            assert [h.score for h in nbest] == pytest.approx(want, abs=1e-4)
        else:
            assert all(w >= h.score - 1e-4 for w, h in zip(want, nbest, strict=True))
            longest = max(len(g) for g in got)  # what transformers added at the last step
            assert all(len(g) == longest for g in got if g not in [h.tokens for h in nbest])
    assert same >= 1  # (most sentences, unless EOS is biased up)


def test_beam_without_early_stopping_can_only_score_higher(pair):
    """transformers' default keeps searching after K finished hypotheses (module doc)."""
    model, tok, run = pair
    beam = 4
    ref, _, scores = hf_generate(model, tok, MORE, num_beams=beam, early_stopping=False,
                                 max_length=41, forced_eos_token_id=None)  # fmt: skip
    mine = atento_search(run, MORE, beam=beam, max_len=40)
    differ = 0
    for (hyp,), tokens, score in zip(mine, ref, scores, strict=True):
        assert score >= hyp.score - 1e-4
        if tokens == hyp.tokens:
            assert score == pytest.approx(hyp.score, abs=1e-4)
        else:  # a hypothesis found after atento stopped: longer than atento's
            differ += 1
            assert len(tokens) > len(hyp.tokens)
    with_eos_early = run.model.output_bias[0] == 3.0
    assert differ >= 1 or not with_eos_early  # the case happens with EOS biased up


def test_beam_at_the_maximum_length(pair):
    """Without the forced EOS both searches return the same best hypothesis when the length
    runs out (finished or not); with it, transformers' ends in a forced EOS."""
    model, tok, run = pair
    beam, limit = 3, 4
    ref, done, scores = hf_generate(model, tok, MORE, num_beams=beam, early_stopping=True,
                                    max_length=limit + 1, forced_eos_token_id=None)  # fmt: skip
    mine = atento_search(run, MORE, beam=beam, max_len=limit)
    for (hyp,), tokens, score in zip(mine, ref, scores, strict=True):
        assert hyp.tokens == tokens
        assert hyp.score == pytest.approx(score, abs=1e-4)
    forced, done, _ = hf_generate(model, tok, MORE, num_beams=beam, early_stopping=True,
                                  max_length=limit + 1)  # fmt: skip
    assert all(done)
    assert all(len(t) < limit for t in forced)


def test_min_len_equals_min_new_tokens(pair):
    model, tok, run = pair
    ref, _, _ = hf_generate(model, tok, MORE, num_beams=3, early_stopping=True,
                            max_length=41, min_new_tokens=6, forced_eos_token_id=None)  # fmt: skip
    mine = atento_search(run, MORE, beam=3, max_len=40, min_len=6)
    assert [h[0].tokens for h in mine] == ref
    assert all(len(t) >= 6 for t in ref)


def test_packed_output_layer_gives_the_same_beam_outputs(pair, monkeypatch):
    """The output layer through the oneDNN-packed weight (`atento.kernels`; the suite
    otherwise keeps F.linear): the same best hypotheses as `generate`, scores to 1e-4."""
    model, tok, run = pair
    ref, _, scores = hf_generate(model, tok, MORE, num_beams=4, early_stopping=True,
                                 max_length=41, forced_eos_token_id=None)  # fmt: skip
    monkeypatch.setenv("ATENTO_DECODE_KERNEL", "packed")
    mine = atento_search(run, MORE, beam=4, max_len=40)
    assert [h[0].tokens for h in mine] == ref
    assert [h[0].score for h in mine] == pytest.approx(scores, abs=1e-4)
