"""The fused label-smoothed cross-entropy equals PyTorch's, in value and gradient."""

import math

import pytest
import torch
import torch.nn.functional as F

from atento.training.loss import sequence_loss


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.4])
def test_value_and_gradient_match_cross_entropy(eps):
    torch.manual_seed(0)
    logits = (3 * torch.randn(2, 5, 11)).requires_grad_()
    targets = torch.randint(1, 11, (2, 5))
    targets[1, 3:] = 0  # padding: masked out
    ours = sequence_loss(logits, targets, label_smoothing=eps, mask=targets != 0)
    (g_ours,) = torch.autograd.grad(ours, logits)
    ref = F.cross_entropy(
        logits.reshape(-1, 11), targets.reshape(-1), ignore_index=0, label_smoothing=eps,
        reduction="sum",
    )  # fmt: skip
    (g_ref,) = torch.autograd.grad(ref, logits)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-6)
    assert torch.allclose(g_ours, g_ref, atol=1e-6)
    assert torch.equal(g_ours[1, 3:], torch.zeros_like(g_ours[1, 3:]))


def test_selected_rows_equal_full_tensor():
    torch.manual_seed(1)
    logits = torch.randn(3, 4, 7)
    targets = torch.randint(0, 7, (3, 4))
    real = targets != 0
    assert sequence_loss(logits[real], targets[real], label_smoothing=0.1).item() == pytest.approx(
        sequence_loss(logits, targets, label_smoothing=0.1, mask=real).item()
    )


def test_without_a_mask_every_position_counts_id_0_included():
    """Padding is told by the mask, never by an id: 0 is a real token to some tokenizers
    (Marian's EOS)."""
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.2, 0.3, 0.5]]))
    targets = torch.tensor([1, 0])
    assert sequence_loss(logits, targets).item() == pytest.approx(-math.log(0.25 * 0.2))
    mask = torch.tensor([True, False])
    assert sequence_loss(logits, targets, mask=mask).item() == pytest.approx(-math.log(0.25))


def test_gradcheck_double():
    torch.manual_seed(2)
    logits = torch.randn(4, 6, dtype=torch.double, requires_grad=True)
    targets = torch.tensor([1, 2, 5, 3])
    assert torch.autograd.gradcheck(
        lambda z: sequence_loss(z, targets, label_smoothing=0.2), logits
    )


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_logits_are_scored_in_fp32(dtype):
    torch.manual_seed(0)
    logits = torch.randn(5, 7).to(dtype)
    targets = torch.tensor([1, 2, 0, 4, 6])
    got = sequence_loss(logits, targets, label_smoothing=0.1)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, sequence_loss(logits.float(), targets, label_smoothing=0.1))
