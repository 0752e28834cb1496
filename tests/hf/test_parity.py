"""Imported models compute what `transformers` computes: logits to 1e-4 (fp32) on padded
batches of different lengths, BERT's classification probabilities, and the cached step."""

from __future__ import annotations

import pytest
import torch

from atento.nn.transformer_layers import Block
from atento.rundir import load_run

pytest.importorskip("transformers")

from .conftest import PROBES, transformers

TOL = 1e-4


def _batch(tok, texts, specials=False):
    """Right-padded ids (B, T) and the real-token mask, atento's [CLS] x [SEP] with specials."""
    seqs = [tok.encode(t) for t in texts]
    if specials:
        seqs = [[tok.bos_id, *s, tok.eos_id] for s in seqs]
    width = max(map(len, seqs))
    pad = 0 if tok.pad_id is None else tok.pad_id
    ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
    mask = torch.tensor([[True] * len(s) + [False] * (width - len(s)) for s in seqs])
    assert len({len(s) for s in seqs}) > 1  # the batch is padded
    return ids, mask


def test_gpt2_logits_equal_transformers(gpt2_dir, gpt2_run):
    run = load_run(gpt2_run)
    theirs = transformers.GPT2LMHeadModel.from_pretrained(gpt2_dir).eval()
    ids, mask = _batch(run.tokenizers["text"], PROBES)
    with torch.no_grad():
        ours = run.model(ids, pad_mask=mask)
        ref = theirs(input_ids=ids, attention_mask=mask.long()).logits
    assert torch.allclose(ours[mask], ref[mask], atol=TOL, rtol=0)
    assert run.cfg.model.activation == "gelu_tanh" and run.cfg.task == "lm"


def test_gpt2_cached_steps_equal_one_pass(gpt2_run):
    """The KV-cached lean step (Block.step with GELU-tanh) against the full forward."""
    model = load_run(gpt2_run).model
    model_ids = list(range(5, 17))
    ids = torch.tensor([model_ids])
    with torch.no_grad():
        full = model.hidden(ids)[0][0]
        h, _, cache = model.hidden(ids[:, :4])
        steps = [h[0, -1]]
        for i in model_ids[4:]:
            h, cache = model.step_hidden(torch.tensor([i]), cache)
            steps.append(h[0])
    assert torch.allclose(torch.stack(steps), full[3:], atol=1e-5)


@pytest.mark.parametrize("kind", ["mlm", "base"])
def test_bert_logits_and_states_equal_transformers(kind, bert_dirs, bert_runs):
    run = load_run(bert_runs[kind])
    cls = transformers.BertForMaskedLM if kind == "mlm" else transformers.BertModel
    theirs = cls.from_pretrained(bert_dirs[kind]).eval()
    tok = run.tokenizers["text"]
    ids, mask = _batch(tok, PROBES, specials=True)
    ids[0, 2] = tok.mask_id
    with torch.no_grad():
        out = theirs(input_ids=ids, attention_mask=mask.long())
        if kind == "mlm":
            ours, ref = run.model(ids, pad_mask=mask), out.logits
        else:
            ours, ref = run.model.hidden(ids, pad_mask=mask)[0], out.last_hidden_state
    assert torch.allclose(ours[mask], ref[mask], atol=TOL, rtol=0)
    m = run.cfg.model
    assert (m.pre_norm, m.activation, m.norm_eps, m.embed_norm, m.type_vocab) == (
        False, "gelu", 1e-12, True, 2)  # fmt: skip
    assert (m.head_transform, m.output_bias) == ((True, True) if kind == "mlm" else (False, False))


def test_bert_classification_probabilities_equal_transformers(bert_dirs, bert_runs):
    run = load_run(bert_runs["classify"])
    theirs = transformers.BertForSequenceClassification.from_pretrained(bert_dirs["classify"])
    ids, mask = _batch(run.tokenizers["text"], PROBES, specials=True)
    with torch.no_grad():
        ours = run.model(ids, mask).logits.softmax(-1)
        ref = theirs.eval()(input_ids=ids, attention_mask=mask.long()).logits.softmax(-1)
    assert torch.allclose(ours, ref, atol=TOL, rtol=0)
    assert run.tokenizers["labels"].labels == ["neg", "pos"]
    assert (run.cfg.model.pooling, run.cfg.model.pooler) == ("cls", True)


@pytest.mark.parametrize("pre_norm", [True, False])
@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_tanh", "swish"])
def test_block_step_equals_attend_for_every_norm_and_activation(pre_norm, activation):
    torch.manual_seed(0)
    block = Block(d_model=16, heads=2, ff_size=32, dropout=0.0, pre_norm=pre_norm,
                  activation=activation, norm_eps=1e-12).eval()  # fmt: skip
    x = torch.randn(3, 5, 16)
    causal = torch.ones(5, 5, dtype=torch.bool).tril()[None]
    with torch.no_grad():
        full = block.attend(x, causal)[0]
        _, _, kv = block.attend(x[:, :4], causal[:, :4, :4])
        last, _ = block.step(x[:, 4], kv)
    assert torch.allclose(last, full[:, 4], atol=1e-5)


def test_older_checkpoint_layouts_import_to_the_same_model(gpt2_dir, gpt2_run, bert_dirs,
                                                           bert_runs, tmp_path):  # fmt: skip
    """GPT-2 as OpenAI's conversion saved it (no `transformer.` prefix, the causal-mask buffers,
    pytorch_model.bin) and BERT with TensorFlow-era LayerNorm names (gamma / beta) and the
    position-id buffer: the same weights as the current layout."""
    import shutil

    import safetensors.torch

    from .conftest import import_hf

    cases = [(gpt2_dir, gpt2_run), (bert_dirs["mlm"], bert_runs["mlm"])]
    for i, (src, run) in enumerate(cases):
        d = tmp_path / f"old{i}"
        shutil.copytree(src, d)
        state = safetensors.torch.load_file(str(d / "model.safetensors"))
        (d / "model.safetensors").unlink()
        if i == 0:
            state = {k.removeprefix("transformer."): v for k, v in state.items()}
            state["h.0.attn.bias"] = torch.ones(1, 1, 128, 128).tril()
            state["h.0.attn.masked_bias"] = torch.tensor(-1e4)
            state["lm_head.weight"] = state["wte.weight"].clone()
        else:
            state = {
                k.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
                    "LayerNorm.bias", "LayerNorm.beta"
                ): v
                for k, v in state.items()
            }
            state["bert.embeddings.position_ids"] = torch.arange(64)[None]
        torch.save(state, d / "pytorch_model.bin")
        old = load_run(import_hf(d, tmp_path / f"run{i}")).model.state_dict()
        new = load_run(run).model.state_dict()
        assert old.keys() == new.keys() and all(torch.equal(old[k], new[k]) for k in new)


def test_bert_for_pretraining_keeps_its_pooler_and_drops_the_next_sentence_head(
    bert_dirs, tmp_path, capsys
):
    import shutil

    from .conftest import bert_config, import_hf

    d = tmp_path / "pretraining"
    shutil.copytree(bert_dirs["mlm"], d)
    config = transformers.BertConfig.from_pretrained(d)
    torch.manual_seed(2)
    theirs = transformers.BertForPreTraining(bert_config(config.vocab_size)).eval()
    theirs.save_pretrained(d)
    run = load_run(import_hf(d, tmp_path / "run"))
    assert "next-sentence head" in capsys.readouterr().out
    tok = run.tokenizers["text"]
    ids, mask = _batch(tok, PROBES, specials=True)
    with torch.no_grad():
        ref = theirs(input_ids=ids, attention_mask=mask.long()).prediction_logits
        ours = run.model(ids, pad_mask=mask)
    assert torch.allclose(ours[mask], ref[mask], atol=TOL, rtol=0)
    pooler = theirs.bert.pooler.dense.weight
    assert run.cfg.model.pooler and torch.equal(run.model.pooler.weight, pooler)
