"""The chunked output layer + loss (train.fused_output) equals the plain path: logits, then
`sequence_loss`, in value and in the gradients of the hidden states and of the weight."""

import pytest
import torch
import torch.nn.functional as F

from atento.errors import AtentoError
from atento.training.fused_output import fused_dtype, fused_output_loss
from atento.training.loss import sequence_loss


def _plain(h, weight, targets, eps, bias=None):
    logits = h @ weight.t() + (0 if bias is None else bias)
    return sequence_loss(logits, targets, label_smoothing=eps)


def _grads(fn, h, weight):
    h, weight = h.clone().requires_grad_(), weight.clone().requires_grad_()
    loss = fn(h, weight)
    (0.5 * loss).backward()  # a scaled loss, as the trainer's division by the token count
    return loss.detach(), h.grad, weight.grad


@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("chunk", [4, 16, 64])  # several chunks with a remainder; one; one > N
def test_fp32_value_and_gradients_equal_the_plain_path(eps, with_bias, chunk):
    torch.manual_seed(0)
    h, weight = torch.randn(37, 12), 2 * torch.randn(29, 12)
    targets = torch.randint(0, 29, (37,))
    bias = torch.randn(29) if with_bias else None
    ref = _grads(lambda x, w: _plain(x, w, targets, eps, bias), h, weight)
    ours = _grads(
        lambda x, w: fused_output_loss(x, w, targets, label_smoothing=eps, bias=bias, chunk=chunk),
        h, weight,
    )  # fmt: skip
    # only the summation order differs (per chunk, then over chunks)
    assert ours[0].item() == pytest.approx(ref[0].item(), rel=1e-6)
    for a, b in zip(ours[1:], ref[1:], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_bf16_products_match_the_autocast_path():
    torch.manual_seed(1)
    h, weight = torch.randn(50, 16), torch.randn(40, 16)
    targets = torch.randint(0, 40, (50,))

    def plain(x, w):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = F.linear(x, w)  # bf16 logits, made fp32 by the loss
        return sequence_loss(logits, targets, label_smoothing=0.1)

    ref = _grads(plain, h, weight)

    def fused(x, w):
        return fused_output_loss(x, w, targets, label_smoothing=0.1, dtype=torch.bfloat16, chunk=16)

    ours = _grads(fused, h, weight)
    assert ours[0].item() == pytest.approx(ref[0].item(), rel=1e-3)
    assert ours[1].dtype == ours[2].dtype == torch.float32
    for a, b in zip(ours[1:], ref[1:], strict=True):
        torch.testing.assert_close(a, b, rtol=0.03, atol=0.01)


def test_bf16_bias_gradient_comes_from_the_fp32_logit_gradient():
    """With bf16 products the logit gradient is cast to bf16 by its last pass; the bias
    gradient is still summed from the fp32 one (the plain autocast path's, to its precision)."""
    torch.manual_seed(3)
    h, weight, targets = torch.randn(50, 16), torch.randn(40, 16), torch.randint(0, 40, (50,))
    grads = []
    for fused in (False, True):
        bias = torch.randn(40, generator=torch.Generator().manual_seed(4)).requires_grad_()
        if fused:
            loss = fused_output_loss(h, weight, targets, label_smoothing=0.1, bias=bias,
                                     dtype=torch.bfloat16, chunk=16)  # fmt: skip
        else:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = F.linear(h, weight)
            loss = sequence_loss(logits.float() + bias, targets, label_smoothing=0.1)
        loss.backward()
        grads.append(bias.grad)
    assert grads[1].dtype == torch.float32
    torch.testing.assert_close(grads[1], grads[0], rtol=0.03, atol=0.02)
    assert grads[1].sum().item() == pytest.approx(0.0, abs=1e-4)  # each row's gradient sums to 0


def test_without_gradients_it_is_cross_entropy():
    torch.manual_seed(2)
    h, weight = torch.randn(9, 5), torch.randn(7, 5)
    targets = torch.randint(0, 7, (9,))
    with torch.no_grad():
        ours = fused_output_loss(h, weight, targets, label_smoothing=0.2, chunk=4)
    ref = F.cross_entropy(h @ weight.t(), targets, label_smoothing=0.2, reduction="sum")
    assert ours.item() == pytest.approx(ref.item(), rel=1e-6)


def test_bad_shapes_are_a_value_error():
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        fused_output_loss(torch.zeros(2, 3, 4), torch.zeros(5, 4), torch.zeros(2, dtype=torch.long))


def test_auto_is_on_under_bf16_autocast_and_in_fp32_on_a_cpu_only():
    model = torch.nn.Module()
    model.output_layer = lambda: None
    assert fused_dtype(None, model, "cpu") == torch.float32
    assert fused_dtype(None, model, "cuda") is None  # fp32 on a GPU: not measured, plain
    assert fused_dtype(False, model, "cpu") is None
    assert fused_dtype(True, model, "cpu") == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert fused_dtype(None, model, "cpu") == torch.bfloat16
        assert fused_dtype(False, model, "cpu") is None
        assert fused_dtype(True, torch.nn.Linear(2, 2), "cpu") is None  # no output_layer()


def _trainer(tmp_path, setting, config="toy_transformer.yaml"):
    from atento.config_io import load_config
    from atento.training.loop import Trainer
    from conftest import CONFIGS

    over = ["data.n_train=64", "runtime.precision=fp32", f"train.fused_output={setting}"]
    return Trainer(load_config(CONFIGS / config, over), tmp_path / f"{config}-{setting}",
                   progress=False)  # fmt: skip


def _trainer_losses(tmp_path, setting, steps=3):
    trainer = _trainer(tmp_path, setting)
    batches = [trainer.task.collate(list(range(16 * i, 16 * i + 16))) for i in range(steps)]
    losses = [trainer.train_step(batch)[0] for batch in batches]
    return losses, trainer.model.tgt_embed.weight.detach()


def test_the_attention_rnn_trains_the_same_with_the_fused_output(tmp_path):
    """The RNN translator's output layer (with its bias) through the chunked loss: the same
    losses and weights as its plain logits, to float32 summation order."""
    runs = {}
    for setting in ("false", "true"):
        trainer = _trainer(tmp_path, setting, "toy_dates.yaml")
        batches = [trainer.task.collate(list(range(16 * i, 16 * i + 16))) for i in range(3)]
        losses = [trainer.train_step(batch)[0] for batch in batches]
        runs[setting] = (
            losses,
            [p.detach().clone() for p in trainer.model.decoder.output.parameters()],
        )
    assert runs["true"][0] == pytest.approx(runs["false"][0], rel=1e-5)
    for fused, plain in zip(runs["true"][1], runs["false"][1], strict=True):
        torch.testing.assert_close(fused, plain, rtol=1e-4, atol=1e-5)


def test_tied_transformer_trains_the_same_with_the_fused_output(tmp_path):
    plain, w_plain = _trainer_losses(tmp_path, "false")
    fused, w_fused = _trainer_losses(tmp_path, "true")
    assert fused == pytest.approx(plain, rel=1e-5)
    # the output weight is the shared embedding: it is trained through both uses
    torch.testing.assert_close(w_fused, w_plain, rtol=1e-4, atol=1e-5)


def test_config_rejects_an_unknown_setting():
    from atento.config_io import load_config
    from conftest import CONFIGS

    with pytest.raises(AtentoError, match="train.fused_output"):
        load_config(CONFIGS / "toy_transformer.yaml", ["train.fused_output=chunked"])


@pytest.mark.parametrize("output_bias", [False, True])
def test_validation_loss_equals_the_full_logits_one(output_bias):
    from atento.data.batching import collate
    from atento.models.transformer import TransformerSeq2Seq
    from atento.tasks.base import teacher_forced_loss

    torch.manual_seed(3)
    model = TransformerSeq2Seq(src_vocab=23, tgt_vocab=23, d_model=16, heads=2, ff_size=32,
                               layers=1, output_bias=output_bias).eval()  # fmt: skip
    if output_bias:
        model.output_bias.normal_()
    pairs = [([5, 6, 7], [8, 9]), ([10, 11], [12, 13, 14, 15]), ([16], [17])]
    batch = collate(pairs)
    with torch.no_grad():
        ours = teacher_forced_loss(model, [batch], "cpu")
        logits, _ = model(batch.src_ids, batch.src_mask, batch.tgt_in)  # (B, T, V)
        ref = sequence_loss(logits, batch.tgt_out, mask=batch.tgt_mask).item()
    assert ours["loss"] == pytest.approx(ref / batch.n_tgt_tokens, abs=6e-5)  # rounded to 4 places
