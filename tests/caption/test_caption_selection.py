"""Captioning picks its best checkpoint by corpus BLEU-4 of the greedy captions, not BLEU-1."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from atento.config_io import load_config
from atento.data.tokenizers import WordTokenizer
from atento.registry import placement_for
from atento.tasks.captioning import CaptionTask
from conftest import CONFIGS

REFERENCE = "a dog runs on the green grass"
# every word right, no bigram: BLEU-1 100; p2..p4 are 0 matches of 6, 5, 4, smoothed (sacreBLEU
# "exp") to 1/12, 1/20, 1/32, so BLEU-4 = 100 * (1/7680)^(1/4) = 10.68
SHUFFLED = "grass green the on runs dog a"
# every n-gram right but 5 words of 7: brevity penalty exp(1 - 7/5), BLEU-1 = BLEU-4 = 67.03
PREFIX = "a dog runs on the"


class UniformModel(nn.Module):
    """Equal logits for every word: the teacher-forced loss is ln V."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab

    def forward(self, features, mask, tgt_in):
        return torch.zeros(*tgt_in.shape, self.vocab), None


class Greedy:
    """A translator whose greedy "captions" are given."""

    search = SimpleNamespace(batch_size=8)

    def __init__(self, tok: WordTokenizer, captions: list[str]) -> None:
        self.tok, self.captions = tok, captions

    def with_search(self, **_):
        return self

    def translate_ids(self, sources):
        return [[SimpleNamespace(tokens=self.tok.encode(c))] for c in self.captions[: len(sources)]]


def _validate(caption: str) -> dict[str, float]:
    cfg = load_config(CONFIGS / "flickr8k_caption.yaml", ["data.dir=unused", "runtime.device=cpu"])
    task = CaptionTask(cfg)
    tok = WordTokenizer.from_texts([REFERENCE])
    task.tokenizers = {"tgt": tok}
    task.valid_feats = torch.zeros(1, 4, 8)  # one image of 4 regions
    task.valid_refs = [[REFERENCE]]
    task.translator = lambda model, placement, search=None: Greedy(tok, [caption])
    return task.validate(UniformModel(tok.vocab_size), placement_for(cfg))


def test_validation_selects_by_bleu4_where_bleu1_would_choose_the_other_caption():
    shuffled, prefix = _validate(SHUFFLED), _validate(PREFIX)
    assert (shuffled["bleu1"], prefix["bleu1"]) == (100.0, pytest.approx(67.03, abs=0.01))
    selection = CaptionTask.selection
    assert selection.higher_is_better
    assert shuffled[selection.metric] == pytest.approx(10.68, abs=0.01)
    assert prefix[selection.metric] == pytest.approx(67.03, abs=0.01)
    assert selection.better(prefix[selection.metric], shuffled[selection.metric])
    assert not selection.better(shuffled[selection.metric], prefix[selection.metric])
