"""Score functions against formulas worked out by hand, and the details a mutation-testing
run (`mutmut`, benchmarks/README.md "Mutation score") showed no other test pinned down."""

import pytest
import torch
import torch.nn.functional as F

from atento.attention import make_score
from atento.attention.multihead import MultiHeadAttention
from atento.search.step import ban_specials


def test_additive_score_is_v_tanh_wq_plus_uk_plus_b() -> None:
    """Bahdanau et al. 2015: e = v^T tanh(W s + U h + b), one bias (on the key side)."""
    score = make_score("additive", query_size=2, key_size=2)
    hidden = score.v.in_features
    assert score.query_proj.bias is None and score.v.bias is None
    assert score.key_proj.bias is not None and score.key_proj.bias.shape == (hidden,)
    torch.manual_seed(0)
    s, h = torch.randn(1, 1, 2), torch.randn(1, 3, 2)
    W, U, b = score.query_proj.weight, score.key_proj.weight, score.key_proj.bias
    v = score.v.weight[0]
    expected = torch.stack([v @ torch.tanh(W @ s[0, 0] + U @ h[0, j] + b) for j in range(3)])
    got = score(s, score.prepare_keys(h))
    torch.testing.assert_close(got[0, 0], expected)


def test_cosine_score_strength_is_one_plus_softplus() -> None:
    score = make_score("cosine", query_size=2, key_size=2)
    with torch.no_grad():
        score.strength.weight.zero_()
        score.strength.bias.fill_(0.5)
    s = torch.tensor([[[3.0, 4.0]]])  # |s| = 5
    h = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]]])
    beta = 1.0 + torch.log1p(torch.exp(torch.tensor(0.5)))
    expected = beta * torch.tensor([0.6, 0.8, -0.6])
    torch.testing.assert_close(score(s, score.prepare_keys(h))[0, 0], expected)


@pytest.mark.parametrize("name", ["dot", "scaled_dot", "cosine"])
def test_widths_must_match_for_parameter_free_scores(name) -> None:
    with pytest.raises(ValueError, match=f"^{name} attention needs query and key widths"):
        make_score(name, query_size=4, key_size=6)
    make_score("additive", query_size=4, key_size=6)  # the learned scores map widths


def test_unknown_score_is_named() -> None:
    with pytest.raises(ValueError, match="unknown attention score 'dott'"):
        make_score("dott", query_size=4, key_size=4)


def test_multihead_dropout_is_off_by_default_and_only_in_training() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 5, 8)
    plain = MultiHeadAttention(d_model=8, heads=2)
    out_train = plain.train()(x)[0]
    torch.testing.assert_close(out_train, plain.eval()(x)[0])  # default dropout 0
    noisy = MultiHeadAttention(d_model=8, heads=2, dropout=0.5)
    noisy.load_state_dict(plain.state_dict())
    torch.testing.assert_close(noisy.eval()(x)[0], plain.eval()(x)[0])
    torch.manual_seed(1)
    assert not torch.allclose(noisy.train()(x, need_weights=True)[0], plain.eval()(x)[0])


def test_bos_may_be_output_when_it_is_also_eos() -> None:
    lp = torch.zeros(1, 5)
    banned = ban_specials(lp, pad_id=0, bos_id=2, eos_id=3)
    assert torch.isinf(banned[0, [0, 2]]).all() and torch.isfinite(banned[0, [1, 3, 4]]).all()
    same = ban_specials(lp, pad_id=0, bos_id=2, eos_id=2)  # GPT-style: one id for both
    assert torch.isinf(same[0, 0]) and torch.isfinite(same[0, 1:]).all()


def test_loss_without_grad_equals_loss_with_grad_under_smoothing() -> None:
    from atento.training.loss import sequence_loss

    torch.manual_seed(0)
    logits = torch.randn(6, 4, requires_grad=True)  # N != V: gradient shapes are checked
    targets = torch.tensor([1, 0, 3, 2, 0, 1])
    real = torch.tensor([True, False, True, True, False, True])  # the masked rows are left out
    with_grad = sequence_loss(logits, targets, label_smoothing=0.2, mask=real)
    with torch.no_grad():
        without = sequence_loss(logits, targets, label_smoothing=0.2, mask=real)
    reference = F.cross_entropy(logits[real], targets[real], label_smoothing=0.2, reduction="sum")
    torch.testing.assert_close(with_grad, reference)
    torch.testing.assert_close(without, reference)
    with_grad.backward()
    assert logits.grad.shape == (6, 4) and (logits.grad[~real] == 0).all()
