"""Positional encodings: the sinusoid formula at sampled entries, learned positions' limits."""

import math

import pytest
import torch

from atento.errors import AtentoError
from atento.nn import LearnedPositions, SinusoidalPositions


@pytest.mark.parametrize("d_model", [16, 17, 64])
def test_sinusoids_match_the_formula(d_model):
    pe = SinusoidalPositions(d_model=d_model, max_positions=50)(50)
    assert pe.shape == (50, d_model)
    for pos in (0, 1, 7, 31, 49):
        for i in range(0, d_model // 2, 3):
            angle = pos / 10000 ** (2 * i / d_model)
            assert pe[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-5)
            assert pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-5)


def test_positions_beyond_the_table_and_offsets_agree():
    small = SinusoidalPositions(d_model=16, max_positions=8)
    big = SinusoidalPositions(d_model=16, max_positions=40)
    torch.testing.assert_close(small(10, offset=25), big(35)[25:])
    torch.testing.assert_close(small(1, offset=3), big(4)[3:])


def test_learned_positions_shape_and_limit():
    learned = LearnedPositions(d_model=8, max_positions=10)
    assert learned(4, offset=6).shape == (4, 8)
    with pytest.raises(AtentoError, match="max_positions"):
        learned(4, offset=7)


@pytest.mark.parametrize("d_model", [16, 17, 64])
def test_halves_layout_is_the_interleaved_one_with_columns_moved(d_model):
    """Marian's layout: the same sin and cos values, every sin first (columns 0..ceil(D/2)-1),
    then every cos; also beyond the precomputed table."""
    inter = SinusoidalPositions(d_model=d_model, max_positions=20)
    halves = SinusoidalPositions(d_model=d_model, max_positions=20, layout="halves")
    order = [*range(0, d_model, 2), *range(1, d_model, 2)]
    for length, offset in ((20, 0), (5, 30)):
        torch.testing.assert_close(halves(length, offset), inter(length, offset)[:, order],
                                   atol=1e-5, rtol=0)  # fmt: skip
    positions = torch.tensor([[0, 3], [25, 1]])
    torch.testing.assert_close(halves.at(positions), inter.at(positions)[..., order],
                               atol=1e-5, rtol=0)  # fmt: skip
    with pytest.raises(ValueError, match="layout"):
        SinusoidalPositions(d_model=8, max_positions=4, layout="shuffled")
