"""The synthetic attention check (experiments/digits_attention.py): trained for a few seconds
on digit scenes, the captioner looks at the digit it names (attention mass in that digit's
cell >= 3x the cell's share)."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

pytest.importorskip("sklearn")


def _experiment():
    path = Path(__file__).resolve().parents[2] / "experiments" / "digits_attention.py"
    spec = importlib.util.spec_from_file_location("digits_attention", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


digits = _experiment()
GRID = digits.GRID
DigitsCaptioner = digits.DigitsCaptioner
digit_step_attention = digits.digit_step_attention
digits_tokenizer = digits.digits_tokenizer
make_scenes = digits.make_scenes
named_cell_attention = digits.named_cell_attention
plot_scene_attention = digits.plot_scene_attention
train_digits_captioner = digits.train_digits_captioner


def test_scenes_captions_name_digits_in_reading_order():
    scene = make_scenes(1, seed=3)[0]
    words = scene.caption.split()
    assert scene.image.shape == (1, 24, 24)
    assert words[0] == "a" and len(scene.cells) in (2, 3)
    assert sum(w.isdigit() for w in words) == len(scene.cells)
    for cell in scene.cells:  # each named cell holds ink, the others none
        r, c = divmod(cell, GRID)
        assert float(scene.image[0, r * 8 : r * 8 + 8, c * 8 : c * 8 + 8].sum()) > 0
    empty = [p for p in range(9) if p not in scene.cells]
    for cell in empty:
        r, c = divmod(cell, GRID)
        assert float(scene.image[0, r * 8 : r * 8 + 8, c * 8 : c * 8 + 8].sum()) == 0


class _Looker(nn.Module):
    """Teacher-forced attention from a rule: step t looks at `rule(scene, t)` (or uniformly)."""

    def __init__(self, scenes, rule):
        super().__init__()
        self.scenes, self.rule = scenes, rule

    def forward(self, images, mask, tgt_in, select=None, options=None):
        B, T = tgt_in.shape
        weights = torch.full((B, T, GRID * GRID), 1 / (GRID * GRID))
        for b, scene in enumerate(self.scenes):
            for t in range(T):
                cell = self.rule(scene, t)
                if cell is not None:
                    weights[b, t] = 0.0
                    weights[b, t, cell] = 1.0
        return torch.zeros(B, T, digits_tokenizer().vocab_size), weights


def _digit_cell(scene, t, shift=0):
    """The cell of the digit that is word t + shift of the caption (None if it is no digit)."""
    words = scene.caption.split()
    t += shift
    if not 0 <= t < len(words) or not words[t].isdigit():
        return None
    return scene.cells[sum(w.isdigit() for w in words[:t])]


def test_named_cell_attention_counts_the_step_that_writes_the_digit():
    scenes = make_scenes(20, seed=4)
    assert named_cell_attention(_Looker(scenes, _digit_cell), scenes) == pytest.approx(1.0)
    right = digit_step_attention(_Looker(scenes, _digit_cell), scenes)
    assert (right.other_digit, right.blank, right.argmax) == (0.0, 0.0, 1.0)
    assert right.digits == sum(len(s.cells) for s in scenes)
    # looking at the digit one step early (at its "a") is not looking while naming it
    early = _Looker(scenes, lambda s, t: _digit_cell(s, t, shift=1))
    assert named_cell_attention(early, scenes) == pytest.approx(1 / 9)
    uniform = _Looker(scenes, lambda s, t: None)
    assert named_cell_attention(uniform, scenes) == pytest.approx(1 / 9)


@pytest.fixture
def one_thread():
    """One thread: no slower at these sizes, and the measured numbers do not depend on the
    machine's core count (summation order)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_trained_captioner_attends_to_the_named_digit(one_thread):
    torch.manual_seed(0)
    train, held_out = make_scenes(3000, seed=1), make_scenes(200, seed=2, held_out=True)
    model = DigitsCaptioner()
    losses = train_digits_captioner(model, train, seed=0)  # 300 steps of 128, ~15 s on one core
    assert sum(losses[-20:]) / 20 < 0.3, "the captions were not learned"
    seen = digit_step_attention(model, held_out)  # 200 scenes, ~500 digits
    share = 1 / (GRID * GRID)
    # measured 0.599 (seeds 0-4: 0.50-0.70), other digits' cells 0.06 each
    assert seen.named >= 3 * share, f"named digit's cell {seen.named:.3f}, chance {share:.3f}"
    # the named digit, not any digit: looking at ink alone would give other_digit == named
    assert seen.named >= 3 * seen.other_digit, seen


def test_scene_attention_figure(tmp_path):
    torch.manual_seed(0)
    scene = make_scenes(1, seed=5, held_out=True)[0]
    path, caption = plot_scene_attention(DigitsCaptioner(), scene, tmp_path / "scene.png")
    assert path.stat().st_size > 0
    assert isinstance(caption, str)
