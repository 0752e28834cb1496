"""Beam search's two-stage candidate selection equals the one-stage top 2K over all K*V
extensions, and a decoding step's in-place log-softmax equals the out-of-place one."""

import pytest
import torch

from atento.models.base import log_softmax_fp32
from atento.search.beam import _top_candidates
from atento.search.step import SearchStats


def _one_stage(beam_lp, log_probs, banned, unk_id=None):
    """The reference: every (beam, token) scored, banned ones -inf, the top 2K by torch.topk;
    and the sentences whose best extension (UNK allowed) is UNK."""
    A, K = beam_lp.shape
    V = log_probs.size(1)
    total = beam_lp[:, :, None] + log_probs.view(A, K, V)
    total[:, :, banned] = float("-inf")
    best_is_unk = 0 if unk_id is None else int((total.view(A, -1).argmax(1) % V == unk_id).sum())
    if unk_id is not None:
        total[:, :, unk_id] = float("-inf")
    values, flat = total.view(A, K * V).topk(min(2 * K, K * V), dim=1)
    step_lp = log_probs.view(A, K * V).gather(1, flat)
    return values, flat // V, flat % V, step_lp, best_is_unk


@pytest.mark.parametrize("V", [58, 3000, 7])
@pytest.mark.parametrize("K", [1, 2, 5])
@pytest.mark.parametrize("unk_id", [None, 1])
def test_two_stages_equal_the_top_2k_of_all_extensions(V, K, unk_id):
    g = torch.Generator().manual_seed(V * 10 + K)
    A = 4
    log_probs = torch.log_softmax(torch.randn(A * K, V, generator=g) * 3, dim=1)
    beam_lp = torch.randn(A, K, generator=g) * 4 - 5
    beam_lp[1, 1:] = float("-inf")  # a sentence with one live beam (the first step)
    # UNK the favourite of sentence 2: the count sees it, the candidates never hold it
    log_probs.view(A, K, V)[2, :, 1] = 0.0
    banned = torch.tensor([0, V - 1])
    stats = SearchStats()
    cand = _top_candidates(beam_lp, log_probs, banned, unk_id, stats)
    values, beam, token, step_lp, best_is_unk = _one_stage(beam_lp, log_probs, banned, unk_id)
    assert torch.equal(cand.log_prob, values)
    finite = values.isfinite()  # -inf candidates (too few tokens) may come in any order
    assert torch.equal(cand.beam[finite], beam[finite])
    assert torch.equal(cand.token[finite], token[finite])
    assert torch.equal(cand.step_log_prob[finite], step_lp[finite])
    assert stats.unk_banned_steps == best_is_unk
    assert best_is_unk >= (unk_id is not None)  # at least sentence 2
    assert not bool(torch.isin(cand.token[finite], banned).any())
    if unk_id is not None:
        assert not bool((cand.token[finite] == unk_id).any())


def test_in_place_log_softmax_equals_log_softmax():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 1000, generator=g) * 5
    expected = torch.log_softmax(logits, dim=-1)
    work = logits.clone()
    out = log_softmax_fp32(work)
    assert torch.equal(out, expected)
    assert out.data_ptr() == work.data_ptr()  # no second (N, V) tensor
    bf16 = logits.bfloat16()
    assert torch.equal(log_softmax_fp32(bf16), torch.log_softmax(bf16.float(), dim=-1))
    assert torch.equal(bf16, logits.bfloat16())  # bf16 logits are left alone
    grad = logits.clone().requires_grad_()
    assert torch.equal(log_softmax_fp32(grad), expected)  # autograd: a new tensor
    assert torch.equal(grad.detach(), logits)
