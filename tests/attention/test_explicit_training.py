"""`train.explicit_attention`: CPU training steps (by default those over short key sequences,
in fp32 and under bf16 autocast) compute attention as two products and a softmax instead of
PyTorch's fused kernel; the two forms give the same outputs and gradients, and the switch
decides which runs."""

from unittest import mock

import pytest
import torch
import torch.nn.functional as F

from atento.attention import MultiHeadAttention, causal_mask
from atento.attention.multihead import EXPLICIT_KEYS, EXPLICIT_KEYS_FP32, set_explicit_attention
from atento.config_io import load_config
from atento.training.loop import Trainer
from conftest import CONFIGS

D = 32


def _pair(seed=0, explicit_setting=True):
    """Two identical training-mode modules: the first explicit (forced, or auto), the second
    fused."""
    torch.manual_seed(seed)
    explicit = MultiHeadAttention(d_model=D, heads=4).train()
    fused = MultiHeadAttention(d_model=D, heads=4).train()
    fused.load_state_dict(explicit.state_dict())
    explicit.explicit, fused.explicit = explicit_setting, False
    return explicit, fused


def _run(mha, query, memory, mask):
    query = query.clone().requires_grad_()
    memory = None if memory is None else memory.clone().requires_grad_()
    out = mha(query, memory, mask=mask)[0]
    out.float().pow(2).sum().backward()
    grads = [query.grad] + ([] if memory is None else [memory.grad])
    return out, grads + [p.grad for p in mha.parameters()]


def _inputs(batch=4, tgt=9, src=11, seed=1):
    g = torch.Generator().manual_seed(seed)
    query, memory = torch.randn(batch, tgt, D, generator=g), torch.randn(batch, src, D, generator=g)
    src_mask = torch.arange(src) < torch.tensor([11, 6, 3, 1])[:, None]  # (B, S), one key left
    tgt_mask = torch.arange(tgt) < torch.tensor([9, 9, 5, 2])[:, None]
    return query, memory, src_mask, tgt_mask


@pytest.mark.parametrize("kind", ["self_causal", "cross_padded"])
def test_explicit_form_equals_the_fused_kernel_in_fp32(kind):
    explicit, fused = _pair()
    query, memory, src_mask, tgt_mask = _inputs()
    if kind == "self_causal":
        memory, mask = None, causal_mask(query.size(1))[None] & tgt_mask[:, None, :]
    else:
        mask = src_mask[:, None, :]
    with mock.patch.object(F, "scaled_dot_product_attention",
                           wraps=F.scaled_dot_product_attention) as sdpa:  # fmt: skip
        out_e, grads_e = _run(explicit, query, memory, mask)
        assert sdpa.call_count == 0
        out_f, grads_f = _run(fused, query, memory, mask)
        assert sdpa.call_count == 1
    torch.testing.assert_close(out_e, out_f, rtol=1e-5, atol=1e-6)
    for a, b in zip(grads_e, grads_f, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_explicit_form_under_bf16_autocast_is_bf16_products_with_an_fp32_softmax():
    """Under CPU autocast the fused path computes attention in fp32 from fp32 copies; the
    explicit form (auto's choice here) multiplies in bf16 and normalises in fp32: the outputs
    agree to bf16's precision (8 bits of mantissa), and both are bf16."""
    explicit, fused = _pair(explicit_setting=None)
    query, memory, src_mask, _ = _inputs()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_e, grads_e = _run(explicit, query, memory, src_mask[:, None, :])
        out_f, grads_f = _run(fused, query, memory, src_mask[:, None, :])
    assert out_e.dtype == out_f.dtype == torch.bfloat16
    torch.testing.assert_close(out_e.float(), out_f.float(), rtol=0.03, atol=0.03)
    for a, b in zip(grads_e, grads_f, strict=True):
        scale = b.abs().max().item()
        assert (a - b).abs().max().item() <= 0.05 * scale + 1e-3


def test_which_form_runs():
    """auto: explicit only for a CPU step that builds gradients over <= EXPLICIT_KEYS keys
    under bf16 autocast, <= EXPLICIT_KEYS_FP32 in fp32; true: every CPU training step; false:
    never."""
    mha = MultiHeadAttention(d_model=D, heads=4).train()
    short, long_ = torch.randn(2, 5, D), torch.randn(2, EXPLICIT_KEYS + 1, D)
    fp32_edge = torch.randn(2, EXPLICIT_KEYS_FP32, D)

    def fused_calls(x, grad=True, bf16=True, module=mha):
        spy = mock.patch.object(F, "scaled_dot_product_attention",
                                wraps=F.scaled_dot_product_attention)  # fmt: skip
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
        with spy as sdpa, torch.set_grad_enabled(grad), autocast:
            module(x)
        return sdpa.call_count

    assert mha.explicit is None  # auto
    assert fused_calls(short) == 0
    assert fused_calls(long_) == 1  # the fused kernel is the faster from 256 keys on
    assert fused_calls(short, grad=False) == 1  # validation / decoding: unchanged
    assert fused_calls(short, bf16=False) == 0  # fp32 over few keys: explicit too
    assert fused_calls(fp32_edge, bf16=False) == 0 and fused_calls(fp32_edge) == 0
    assert fused_calls(torch.randn(2, EXPLICIT_KEYS_FP32 + 1, D), bf16=False) == 1
    assert fused_calls(long_[:, : EXPLICIT_KEYS_FP32 + 1]) == 0  # bf16's limit is higher
    mha64 = MultiHeadAttention(d_model=D, heads=4).double().train()
    assert fused_calls(short.double(), bf16=False, module=mha64) == 1  # float64: fused kernel
    model = torch.nn.Sequential(mha)
    set_explicit_attention(model, True)
    assert fused_calls(long_, bf16=False) == 0 and fused_calls(short, grad=False) == 1
    set_explicit_attention(model, False)
    assert fused_calls(short) == 1
    set_explicit_attention(model, None)
    assert mha.explicit is None


def _trainer(tmp_path, explicit: bool) -> Trainer:
    over = ["data.n_train=64", "runtime.precision=fp32", f"train.explicit_attention={explicit}"]
    return Trainer(load_config(CONFIGS / "toy_transformer.yaml", over), tmp_path / str(explicit),
                   progress=False)  # fmt: skip


def test_training_losses_are_the_fused_kernels_to_rounding(tmp_path):
    """Six fp32 updates of the toy Transformer (dropout on, the same masks: attention draws no
    random numbers at attention_dropout 0) give the same losses either way, to 1e-5 relative
    (the two forms sum in another order), and the trainer sets every module's switch."""
    losses = {}
    for explicit in (False, True):
        trainer = _trainer(tmp_path, explicit)
        modules = [m for m in trainer.model.modules() if isinstance(m, MultiHeadAttention)]
        assert modules and all(m.explicit is explicit for m in modules)
        batches = [trainer.task.collate(list(range(10 * i, 10 * i + 10))) for i in range(6)]
        losses[explicit] = [trainer.train_step(batch)[0] for batch in batches]
    assert losses[True] == pytest.approx(losses[False], rel=1e-5)
