"""The cheap-mask dropout: exact keep probability, unbiased, nn.Dropout's contract."""

import pytest
import torch

from atento.nn.dropout import Dropout, dropout, keep_mask, keep_probability, relu_dropout


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_keep_probability_is_one_minus_p_to_16_bits(p):
    q = keep_probability(p)
    assert abs(q - (1 - p)) <= 2**-17
    assert (q * 65536) == int(q * 65536)


@pytest.mark.parametrize("p", [0.1, 0.3])
def test_mask_frequency_matches_keep_probability(p):
    torch.manual_seed(0)
    n = 400_003  # not a multiple of 4: the last 64-bit word is only partly used
    kept = keep_mask((n,), p).double().mean().item()
    sd = (keep_probability(p) * (1 - keep_probability(p)) / n) ** 0.5
    assert abs(kept - keep_probability(p)) < 5 * sd


def test_lanes_of_one_word_are_independent():
    """Neighbouring elements share a 64-bit draw: their masks must still be uncorrelated."""
    torch.manual_seed(1)
    m = keep_mask((200_000, 4), 0.5).double()
    both = (m[:, 0] * m[:, 1]).mean().item()
    assert both == pytest.approx(m[:, 0].mean().item() * m[:, 1].mean().item(), abs=0.01)


def test_unbiased_and_gradient_is_the_mask():
    torch.manual_seed(2)
    x = torch.ones(300_000, requires_grad=True)
    y = dropout(x, 0.2)
    kept = y != 0
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / keep_probability(0.2)))
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # d y_i / d x_i = mask_i / q = y_i for x = 1


def test_bf16_uses_the_same_mask():
    x = torch.randn(1000)
    torch.manual_seed(3)
    a = dropout(x, 0.3)
    torch.manual_seed(3)
    b = dropout(x.bfloat16(), 0.3)
    assert torch.equal(a == 0, b == 0)
    assert torch.allclose(a, b.float(), rtol=1e-2, atol=1e-2)


def test_module_contract():
    x = torch.randn(5, 7)
    module = Dropout(0.5)
    assert torch.equal(module.eval()(x), x)  # eval: identity
    assert torch.equal(Dropout(0.0).train()(x), x)
    assert torch.equal(Dropout(1.0).train()(x), torch.zeros_like(x))
    torch.manual_seed(4)
    first = module.train()(x)
    torch.manual_seed(4)
    assert torch.equal(module(x), first)  # seeded: reproducible (exact resume relies on it)
    with pytest.raises(ValueError):
        Dropout(1.5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_float_mask_equals_the_bool_mask(dtype):
    """The mask written in the compute dtype holds exactly the bool mask's 0/1 (same draws)."""
    torch.manual_seed(5)
    flags = keep_mask((333, 7), 0.25)
    torch.manual_seed(5)
    values = keep_mask((333, 7), 0.25, dtype)
    assert values.dtype == dtype and values.shape == flags.shape
    assert torch.equal(values, flags.to(dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_output_equals_mask_times_scale(dtype):
    """dropout(x) = x * mask / q elementwise: an oracle from the same draws."""
    x = torch.randn(64, 33).to(dtype)
    torch.manual_seed(6)
    mask = keep_mask(x.shape, 0.1)
    torch.manual_seed(6)
    y = dropout(x, 0.1)
    expect = x.double() * mask.double() / keep_probability(0.1)
    assert torch.equal(y == 0, expect == 0)  # the same elements dropped
    rtol = 2e-7 if dtype == torch.float32 else 2**-8  # one rounding of the product
    torch.testing.assert_close(y.double(), expect, rtol=rtol, atol=0)


# ------------------------------------------------------------------ relu + dropout in one step
def _both_paths(a: torch.Tensor, p: float, seed: int = 3):
    """relu_dropout and dropout(relu) from the same generator state: outputs and input
    gradients (for the same upstream gradient)."""
    results = []
    upstream = torch.randn(a.shape, generator=torch.Generator().manual_seed(9)).to(a.dtype)
    for fused in (True, False):
        x = a.detach().clone().requires_grad_(True)
        torch.manual_seed(seed)
        h = relu_dropout(x, p) if fused else dropout(torch.relu(x), p)
        h.backward(upstream)
        results.append((h.detach(), x.grad))
    return results


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("p", [0.1, 0.3])
def test_relu_dropout_is_bit_identical_to_the_composition(dtype, p):
    a = torch.randn(7, 33, 40, dtype=dtype)
    a[0, 0, :5] = 0.0  # relu's gradient at 0 is 0 on both paths
    (h1, g1), (h2, g2) = _both_paths(a, p)
    assert torch.equal(h1, h2)
    assert torch.equal(g1, g2)
    # an element's gradient is nonzero only where it was positive and kept
    assert not ((g1 != 0) & (h1 <= 0)).any()
    assert (h1 == 0).sum() > (a <= 0).sum()  # some positive elements were dropped


def test_relu_dropout_keeps_one_tensor_for_backward():
    a = torch.randn(4, 8, 32, requires_grad=True)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        h = relu_dropout(a * 1.0, 0.1)
    # one tensor: the output itself (which the next linear map saves anyway)
    assert len(saved) == 1 and saved[0].data_ptr() == h.data_ptr()


def test_relu_dropout_falls_back_outside_training():
    a = torch.randn(5, 16)
    assert torch.equal(relu_dropout(a, 0.1, training=False), torch.relu(a))
    assert torch.equal(relu_dropout(a, 0.0), torch.relu(a))
    with torch.no_grad():  # no graph: the plain composition, same mask from the same seed
        torch.manual_seed(1)
        got = relu_dropout(a.requires_grad_(True), 0.2)
        torch.manual_seed(1)
        assert torch.equal(got, dropout(torch.relu(a), 0.2))
    with pytest.raises(ValueError, match="dropout probability"):
        relu_dropout(torch.randn(3, requires_grad=True), 1.5)


def test_feed_forward_fused_and_separate_train_alike():
    from atento.nn.feedforward import PositionwiseFeedForward

    torch.manual_seed(0)
    ffn = PositionwiseFeedForward(d_model=16, ff_size=64, dropout=0.1)
    x = torch.randn(3, 11, 16)
    grads = []
    for fused in (True, False):
        ffn.zero_grad()
        ffn.fuse_relu = fused
        torch.manual_seed(5)
        out = ffn(x)
        out.pow(2).sum().backward()
        grads.append((out.detach(), [q.grad.clone() for q in ffn.parameters()]))
    (o1, g1), (o2, g2) = grads
    assert torch.equal(o1, o2)
    assert all(torch.equal(u, v) for u, v in zip(g1, g2, strict=True))
