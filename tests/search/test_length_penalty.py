import math

import pytest
import torch

from atento.errors import AtentoError
from atento.search import LengthPenalty


def test_alpha_zero_is_raw_log_prob():
    assert LengthPenalty(0.0)(-3.5, 7) == -3.5
    lp = torch.tensor([-1.0, -2.0])
    assert torch.equal(LengthPenalty(0.0)(lp, torch.tensor([3, 4])), lp)


def test_divides_by_length_to_the_alpha_for_floats_and_tensors():
    assert LengthPenalty(1.0)(-6.0, 3) == pytest.approx(-2.0)
    assert LengthPenalty(0.7)(-6.0, 4) == pytest.approx(-6.0 / 4**0.7)
    out = LengthPenalty(0.5)(torch.tensor([-4.0, -9.0]), torch.tensor([4, 9]))
    assert torch.allclose(out, torch.tensor([-2.0, -3.0]))
    mixed = LengthPenalty(1.0)(torch.tensor([-4.0, -9.0]), 2)
    assert torch.allclose(mixed, torch.tensor([-2.0, -4.5]))
    assert math.isinf(LengthPenalty(1.0)(float("-inf"), 3))


def test_length_below_one_counts_as_one():
    assert LengthPenalty(1.0)(-2.0, 0) == -2.0
    assert torch.equal(
        LengthPenalty(1.0)(torch.tensor([-2.0]), torch.tensor([0])), torch.tensor([-2.0])
    )


def test_negative_alpha_is_rejected():
    with pytest.raises(AtentoError, match="alpha"):
        LengthPenalty(-0.1)
