"""The Show-Attend-Tell decoder: the doubly stochastic penalty by hand, teacher forcing ==
incremental steps, beam K=1 == greedy, and a caption batched == decoded alone."""

from functools import partial

import pytest
import torch

from atento.analysis.scoring import score_batch
from atento.config import SearchConfig
from atento.data.vocab import BOS_ID, EOS_ID
from atento.inference import Translator
from atento.models.base import DecodeOptions
from atento.models.captioning import ShowAttendTell, doubly_stochastic_penalty
from atento.search import LengthPenalty, beam_search, greedy_search
from atento.tasks.captioning import caption_batch, collate_features

V, C = 14, 20


def tiny_model(seed: int = 0) -> ShowAttendTell:
    torch.manual_seed(seed)
    model = ShowAttendTell(tgt_vocab=V, feature_size=C, emb_size=8, hidden_size=16, dropout=0.0)
    with torch.no_grad():  # larger weights: captions that differ from image to image, and
        for p in model.parameters():  # an EOS bias: some of them end early
            p.mul_(3.0)
        model.output.bias[EOS_ID] += 2.0
    return model.eval()


def images(n: int, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return list(torch.randn(n, 49, C, generator=g))


def test_doubly_stochastic_penalty_by_hand():
    # one image, 3 regions, 3 steps of which the last is padding
    weights = torch.tensor([[[0.5, 0.25, 0.25], [0.5, 0.5, 0.0], [0.9, 0.05, 0.05]]])
    mask = torch.tensor([[True, True, False]])
    # totals per region: 1.0, 0.75, 0.25 -> 0^2 + 0.25^2 + 0.75^2 = 0.625
    assert float(doubly_stochastic_penalty(weights, mask)) == pytest.approx(0.625)
    # a second image whose attention sums to one per region adds nothing
    second = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])
    both = doubly_stochastic_penalty(torch.cat([weights, second]),
                                     torch.tensor([[True, True, False], [True] * 3]))  # fmt: skip
    assert float(both) == pytest.approx(0.625)


def test_attention_weights_sum_to_one_over_49_regions():
    model = tiny_model()
    feats, mask = collate_features(images(2))
    tgt_in = torch.tensor([[BOS_ID, 5, 6, 7], [BOS_ID, 8, 9, 0]])
    logits, weights = model(feats, mask, tgt_in, options=DecodeOptions(attention=True))
    assert logits.shape == (2, 4, V) and weights.shape == (2, 4, 49)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 4), atol=1e-6)


def test_teacher_forcing_equals_incremental_steps():
    model = tiny_model()
    feats = images(2)
    captions = [[5, 6, 7, 8], [9, 4]]
    scores = score_batch(model, feats, captions, length_penalty=LengthPenalty(0.0),
                         collate=collate_features)  # fmt: skip
    for b, caption in enumerate(captions):
        f, m = collate_features([feats[b]])
        state = model.init_state(model.encode(f, m))
        last, steps = torch.tensor([BOS_ID]), []
        with torch.no_grad():
            for y in [*caption, EOS_ID]:
                log_probs, state, _ = model.step(last, state)
                steps.append(float(log_probs[0, y]))
                last = torch.tensor([y])
        assert scores[b].token_log_probs == pytest.approx(steps, abs=1e-5)


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_of_width_one_is_greedy(alpha):
    model = tiny_model()
    feats, mask = collate_features(images(5))
    penalty = LengthPenalty(alpha)
    step = partial(model.step, options=DecodeOptions())
    with torch.no_grad():
        state = model.init_state(model.encode(feats, mask))
        greedy = greedy_search(step, state, batch_size=5, max_len=12, length_penalty=penalty)
        beam = beam_search(step, state, batch_size=5, beam_size=1, max_len=12,
                           length_penalty=penalty)  # fmt: skip
    assert [g.tokens for g in greedy] == [b[0].tokens for b in beam]
    assert [g.score for g in greedy] == [b[0].score for b in beam]
    assert len({len(g.tokens) for g in greedy}) > 1  # captions of several lengths


@pytest.mark.parametrize("beam", [1, 3])
def test_caption_batched_equals_alone(beam):
    model = tiny_model()
    search = SearchConfig(beam=beam, alpha=0.0, max_len_a=0.0, max_len_b=12, batch_size=8)
    translator = Translator(model, None, None, search, collate=collate_features)
    feats = images(4)
    together = translator.translate_ids(feats)
    alone = [translator.translate_ids([f])[0] for f in feats]
    assert [h[0].tokens for h in together] == [h[0].tokens for h in alone]
    for t, a in zip(together, alone, strict=True):
        assert t[0].score == pytest.approx(a[0].score, abs=1e-5)


def test_loss_adds_lambda_times_penalty(flickr_mini, tmp_path):
    from atento.config_io import load_config
    from atento.tasks.captioning import CaptionTask
    from conftest import CONFIGS

    cfg = load_config(CONFIGS / "flickr8k_caption.yaml",
                      [f"data.dir={flickr_mini}", "data.attention_penalty=2.0"])  # fmt: skip
    task = CaptionTask(cfg)
    model = tiny_model()
    batch = caption_batch(torch.stack(images(2)), [[5, 6, 7], [8]])
    outputs = task.forward(model, batch)
    logits, weights = outputs
    out = task.loss(outputs, batch)
    plain = torch.nn.functional.cross_entropy(
        logits, batch.tgt_out[batch.tgt_out != 0], reduction="sum"
    )
    penalty = doubly_stochastic_penalty(weights, batch.tgt_mask)
    expected = float((plain + 2.0 * penalty).detach())
    assert float(out.loss.detach()) == pytest.approx(expected, rel=1e-5)
    assert float(out.extras["attention_penalty"]) == pytest.approx(
        2 * float(penalty.detach()), rel=1e-5
    )
    assert task.count(batch) == 3 + 1 + 2  # tokens + EOS of each caption


def test_several_references_best_scoring_is_y_star_and_any_match_is_no_error():
    from atento.analysis.search_errors import NONE, analyse_beams_several

    model = tiny_model()
    search = SearchConfig(beam=1, alpha=0.0, max_len_a=0.0, max_len_b=12, batch_size=8)
    translator = Translator(model, None, None, search, collate=collate_features)
    feats = images(4)
    outputs = [h[0].tokens for h in translator.translate_ids(feats)]
    others = [[5, 6], [7], [8, 9, 10], [11, 12]]
    # an output equal to one of the references is no error, even if another scores higher
    refs = [[x, o] for o, x in zip(outputs, others, strict=True)]
    (report,) = analyse_beams_several(translator, feats, refs, [1])
    assert all(v.fault == NONE for v in report.verdicts)
    # y* is the reference the model scores highest
    (several,) = analyse_beams_several(translator, feats, [[x, [4, 4, 4, 4]] for x in others],
                                       [1])  # fmt: skip
    (first,) = analyse_beams_several(translator, feats, [[x] for x in others], [1])
    (second,) = analyse_beams_several(translator, feats, [[[4, 4, 4, 4]]] * 4, [1])
    for v, a, b in zip(several.verdicts, first.verdicts, second.verdicts, strict=True):
        best = a if a.reference_score >= b.reference_score else b
        assert v.reference_ids == best.reference_ids and v.fault == best.fault
