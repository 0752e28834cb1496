"""The decoder-only language model, KV-cached sampling and the `lm` task, on toy text."""

from __future__ import annotations

import json
import math

import pytest
import torch

from atento.cli.main import main
from atento.models.lm import TextTransformer
from atento.search.sampling import filter_logits, pick, sample
from atento.training.schedule import warmup_cosine

TEXT = "the cat sat on the mat. the dog sat on the log.\n" * 60


def _model(positions="learned", context=16, seed=0) -> TextTransformer:
    torch.manual_seed(seed)
    return TextTransformer(vocab_size=11, d_model=16, heads=2, layers=2, ff_size=32,
                           context=context, positions=positions).eval()  # fmt: skip


def test_causal_no_position_sees_the_future() -> None:
    model = _model()
    ids = torch.randint(4, 11, (2, 9))
    changed = ids.clone()
    changed[:, 6:] = 4 + (changed[:, 6:] - 3) % 7
    a, b = model(ids), model(changed)
    torch.testing.assert_close(a[:, :6], b[:, :6])
    assert not torch.allclose(a[:, 6:], b[:, 6:])


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_prefill_then_steps_equal_one_full_pass(positions) -> None:
    model = _model(positions)
    ids = torch.randint(4, 11, (3, 10))
    full = model.logits(model.hidden(ids)[0])
    h, _, cache = model.hidden(ids[:, :4])  # prefill 4 tokens in one pass
    steps = [model.logits(h)]
    for t in range(4, 10):
        h, _, cache = model.hidden(ids[:, t : t + 1], cache=cache)
        steps.append(model.logits(h))
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)
    assert cache[0].length == 10


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_step_equals_hidden_for_one_new_token(positions) -> None:
    """The sampling loop's lean step against the general pass, with left-padded rows: the
    same states and the same cache."""
    model = _model(positions)
    ids = torch.randint(4, 11, (3, 6))
    pad = torch.tensor([[True] * 6, [False, False, True, True, True, True], [False] * 5 + [True]])
    pos = (torch.arange(6)[None] - (~pad).sum(1, keepdim=True)).clamp(min=0)
    _, _, cache = model.hidden(ids, pad_mask=pad, positions=pos)
    new = torch.tensor([5, 9, 4])
    pad1 = torch.cat([pad, torch.ones(3, 1, dtype=torch.bool)], dim=1)
    ref, _, ref_cache = model.hidden(new[:, None], pad_mask=pad1, cache=cache,
                                     positions=pos[:, -1:] + 1)  # fmt: skip
    h, step_cache = model.step_hidden(new, cache, pad_mask=pad1, positions=pos[:, -1] + 1)
    torch.testing.assert_close(h, ref[:, 0], atol=1e-6, rtol=1e-6)
    for a, b in zip(step_cache, ref_cache, strict=True):
        torch.testing.assert_close(a.keys, b.keys)
        torch.testing.assert_close(a.values, b.values)
    # rows of one length: no mask, positions past..past
    _, _, cache = model.hidden(ids)
    ref = model.hidden(new[:, None], cache=cache)[0][:, 0]
    torch.testing.assert_close(model.step_hidden(new, cache)[0], ref, atol=1e-6, rtol=1e-6)
    # the mask is honoured: hiding some cached positions of rows 1 and 2 changes their states
    assert not torch.allclose(model.step_hidden(new, cache, pad_mask=pad1)[0], ref)


def test_left_padded_rows_equal_each_row_alone() -> None:
    model = _model()
    prompts = [[5, 6, 7, 8, 9], [4], [7, 7, 6]]
    together = sample(model, prompts, max_new=8, temperature=0)
    alone = [sample(model, [p], max_new=8, temperature=0)[0] for p in prompts]
    assert together == alone
    state = model.init_state(prompts).appended(torch.tensor([p[-1] for p in prompts]))
    mask, pos = state.mask_and_positions()
    h = model.hidden(state.ids, pad_mask=mask, positions=pos)[0][:, -1]
    for i, p in enumerate(prompts):  # the next-token distributions themselves agree
        ref = model.hidden(torch.tensor([p]))[0][:, -1]
        torch.testing.assert_close(model.logits(h[i : i + 1]), model.logits(ref), atol=1e-5,
                                   rtol=1e-5)  # fmt: skip


@pytest.mark.parametrize("max_new", [10, 40])  # 40: beyond the context of 16 (window slides)
def test_cached_and_uncached_sampling_give_the_same_tokens(max_new) -> None:
    model = _model()
    kw = dict(max_new=max_new, temperature=1.0, top_k=5, top_p=0.9)
    a = sample(model, [[4, 5], [6]], generator=torch.Generator().manual_seed(3), **kw)
    b = sample(model, [[4, 5], [6]], generator=torch.Generator().manual_seed(3),
               use_cache=False, **kw)  # fmt: skip
    c = sample(model, [[4, 5], [6]], generator=torch.Generator().manual_seed(4), **kw)
    assert a == b and a != c and all(len(r) == max_new for r in a)


def test_filters_by_hand() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.2, 0.15, 0.1, 0.05]]))
    kept = lambda x: torch.isfinite(x[0]).nonzero().flatten().tolist()  # noqa: E731
    assert kept(filter_logits(logits, top_k=2)) == [0, 1]
    assert kept(filter_logits(logits, top_p=0.5)) == [0]  # 0.5 alone reaches 0.5
    assert kept(filter_logits(logits, top_p=0.8)) == [0, 1, 2]  # 0.5 + 0.2 < 0.8
    assert kept(filter_logits(logits, top_k=4, top_p=0.99)) == [0, 1, 2, 3]


def test_pick_inverts_the_sorted_cdf_by_hand() -> None:
    """Tokens 2, 0, 1 have probabilities 0.5, 0.3, 0.2: sorted, the cdf is 0.5, 0.8, 1.0, so
    u < 0.5 picks token 2, u < 0.8 token 0, else token 1; top-k 1 leaves only token 2."""
    logits = torch.log(torch.tensor([[0.3, 0.2, 0.5]]))
    for seed in range(40):
        u = torch.rand(1, generator=torch.Generator().manual_seed(seed)).item()
        want = 2 if u < 0.5 else 0 if u < 0.8 else 1
        g = torch.Generator().manual_seed(seed)
        assert pick(logits, temperature=1.0, top_k=0, top_p=1.0, generator=g).item() == want
        g = torch.Generator().manual_seed(seed)
        assert pick(logits, temperature=1.0, top_k=1, top_p=1.0, generator=g).item() == 2
    # temperature 0 is the argmax of every row, whatever u is
    greedy = pick(logits.repeat(2, 1), temperature=0, top_k=0, top_p=1.0,
                  generator=torch.Generator())  # fmt: skip
    assert greedy.tolist() == [2, 2]


def test_cosine_schedule_by_hand() -> None:
    f = warmup_cosine(10, 110, 0.1)
    assert f(5) == 0.5 and f(10) == 1.0 and math.isclose(f(60), 0.55) and f(110) == 0.1
    assert f(500) == 0.1


# ---------------------------------------------------------------- the commands
@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("lm") / "toy.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def _train(text_file, out, *extra):
    args = ["train", "configs/shakespeare_char.yaml", f"data.train={text_file}",
            "model.d_model=32", "model.layers=2", "model.ff_size=64", "model.context=32",
            "data.block_size=32", "train.batch_tokens=256", "train.warmup_steps=10",
            "train.lr=0.003", "train.valid_every=60", *extra, "--out", str(out)]  # fmt: skip
    return main(args)


@pytest.fixture(scope="module")
def lm_run(text_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "lm"
    assert _train(text_file, out, "train.max_steps=200", "train.valid_every=100") == 0
    return out


def test_training_learns_the_toy_text_and_evaluate_reports_it(lm_run, capsys) -> None:
    rows = [json.loads(line) for line in (lm_run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["loss"] < 0.3  # a uniform guess over 19 characters: 2.9 nats
    capsys.readouterr()
    assert main(["evaluate", str(lm_run), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["task"] == "lm" and math.isclose(report["loss"], rows[-1]["loss"], abs_tol=2e-3)
    assert math.isclose(report["bpc"], report["loss"] / math.log(2), rel_tol=0.05)


def test_sample_command_is_reproducible_and_streams(lm_run, capsys) -> None:
    capsys.readouterr()
    args = ["sample", str(lm_run), "--prompt", "the c", "--max-new", "30", "--seed", "7"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main([*args, "--no-cache"]) == 0
    assert capsys.readouterr().out == first and first.startswith("the c")
    assert len(first) == len("the c") + 30 + 1
    assert main(["sample", str(lm_run), "--prompt", "the c", "--temperature", "0",
                 "--max-new", "12"]) == 0  # fmt: skip
    assert capsys.readouterr().out.startswith("the cat sat on")  # greedy knows the text
    assert main(["sample", str(lm_run), "--num", "3", "--max-new", "5"]) == 0
    assert capsys.readouterr().out.count("--- sample") == 3


def test_resume_continues_the_run(text_file, tmp_path) -> None:
    out = tmp_path / "r"
    assert _train(text_file, out, "train.max_steps=60") == 0
    assert _train(text_file, out, "train.max_steps=90", "--resume") == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [60, 90]


@pytest.mark.parametrize(
    "content, message",
    [(b"", "empty text file"), (b"ab\ncd\x00ef", ":2: NUL byte"),
     (b"ok\nbad \xff\n", ":2: invalid UTF-8 at byte offset 7")],
)  # fmt: skip
def test_bad_text_files_are_one_line_errors(tmp_path, capsys, content, message) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes(content)
    assert _train(path, tmp_path / "out", "train.max_steps=2") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and str(path) in err[-1]


def test_prompt_longer_than_the_context(lm_run, capsys) -> None:
    long = "the cat sat on the mat. " * 3  # 72 characters > context 32
    assert main(["sample", str(lm_run), "--prompt", long, "--max-new", "3"]) == 2
    assert "longer than the model's context 32" in capsys.readouterr().err
    assert main(["sample", str(lm_run), "--prompt", long, "--max-new", "3", "--keep-last"]) == 0


def test_sample_from_a_translation_run_needs_a_source(toy_run, capsys) -> None:
    assert main(["sample", str(toy_run)]) == 2
    err = capsys.readouterr().err
    assert "--prompt" in err and len(err.splitlines()) == 1


# ---------------------------------------------------------------- attention, API, server
def _png_text(path) -> dict:
    from PIL import Image

    with Image.open(path) as image:
        return dict(image.text)


def test_self_attention_is_causal_and_each_row_a_distribution() -> None:
    model = _model()
    heads = model.self_attention([4, 5, 6, 7, 8], layer=-1)  # (H, T, T)
    assert heads.shape == (2, 5, 5)
    assert torch.equal(heads.triu(diagonal=1), torch.zeros_like(heads))  # no future position
    torch.testing.assert_close(heads.sum(-1), torch.ones(2, 5))
    assert torch.equal(heads[:, 0, 0], torch.ones(2))  # the first token sees only itself
    with pytest.raises(ValueError, match="layer 2 out of range"):
        model.self_attention([4, 5], layer=2)
    with pytest.raises(ValueError, match=r"head 2 out of range: the model has 2 heads \(0\.\.1\)"):
        model.self_attention([4, 5], head=2)


def test_attention_command_draws_a_prompt(lm_run, tmp_path, capsys) -> None:
    out = tmp_path / "a.png"
    assert main(["attention", str(lm_run), "the cat", "--out", str(out), "--layer", "0"]) == 0
    meta = _png_text(out)
    assert meta["atento:rows"] == meta["atento:cols"] == "7"  # one row and column a character
    assert main(["attention", str(lm_run), "the cat", "--out", str(out), "--grid"]) == 0
    assert _png_text(out)["atento:heads"] == "4"
    src = tmp_path / "prompts.txt"
    src.write_text("the dog\nthe mat.\n", encoding="utf-8")
    assert main(["attention", str(lm_run), "--src", str(src), "--out", str(tmp_path / "d")]) == 0
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["0001.png", "0002.png"]
    capsys.readouterr()
    assert main(["attention", str(lm_run), "the", "--out", str(out), "--layer", "5"]) == 2
    assert "layer 5 out of range" in capsys.readouterr().err


def test_api_samples_what_the_command_prints(lm_run, capsys) -> None:
    import atento
    from atento.errors import AtentoError

    m = atento.load(lm_run)
    capsys.readouterr()
    assert main(["sample", str(lm_run), "--prompt", "the d", "--max-new", "20", "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    (text,) = m.sample("the d", max_new=20, seed=3)
    assert printed == "the d" + text + "\n"
    greedy = m.sample("the d", max_new=20, temperature=0)[0]
    assert m.sample(["the d", "a"], max_new=20, temperature=0)[0] == greedy  # batched, padded
    assert m.info()["task"] == "lm" and m.info()["text_vocab"] > 10
    # one decoding contract: greedy search continues a prompt exactly as greedy sampling does
    (t,) = m.translate("the d", beam=1, alpha=0)
    assert t.text == m.sample("the d", max_new=len(t.tokens), temperature=0)[0]
    (b,) = m.translate("the d", beam=3, nbest=3, alpha=0)
    scores = [o.score for o in b.nbest]
    assert len({o.text for o in b.nbest}) == 3 and scores == sorted(scores, reverse=True)
    assert b.nbest[0].log_prob >= t.log_prob - 1e-4  # the beam's best scores at least greedy's
    with pytest.raises(AtentoError, match="attend to no source"):
        m.translate("the d", attention=True)
    assert m.plot_attention("the cat", lm_run.parent / "api.png").is_file()


def test_server_samples_and_refuses_translation_for_a_language_model(lm_run) -> None:
    from fastapi.testclient import TestClient

    import atento
    from atento.serve.app import create_app

    m = atento.load(lm_run)
    with TestClient(create_app([m])) as c:
        r = c.post("/v1/sample", json={"prompt": "the d", "max_new": 20, "seed": 3, "num": 2})
        assert r.status_code == 200
        assert r.json()["samples"] == m.sample(["the d"] * 2, max_new=20, seed=3)
        r = c.post("/v1/translate", json={"text": "the d", "beam": 3})  # a prompt continued
        assert r.status_code == 200
        assert r.json()["translations"][0]["text"] == m.translate("the d", beam=3)[0].text
        r = c.post("/v1/translate", json={"text": "the d", "attention": True})
        assert r.status_code == 422 and r.json()["error"]["item"] == "attention"
        r = c.post("/v1/sample", json={"prompt": "x", "max_new": 5000})
        assert r.status_code == 413 and r.json()["error"]["item"] == "max_new"
        r = c.post("/v1/sample", json={"prompt": "the cat sat on the mat. " * 3})
        assert r.status_code == 422 and "longer than the model's context" in r.text
        assert c.get("/v1/models").json()["models"][0]["task"] == "lm"
        r = c.post("/v1/attention", json={"text": "the cat", "layer": 0, "head": 1})
        weights, rows, cols = m.self_attention("the cat", layer=0, head=1)
        assert r.status_code == 200 and r.json()["rows"] == rows == cols
        torch.testing.assert_close(torch.tensor(r.json()["weights"]), weights, atol=1e-4, rtol=0)
        r = c.post("/v1/attention", json={"text": "the cat", "layer": 9})
        assert r.status_code == 422 and r.json()["error"]["item"] == "layer"


def test_drop_contained_needs_a_labelled_format(text_file, tmp_path, capsys) -> None:
    assert _train(text_file, tmp_path / "out", "data.drop_contained=true") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("data.drop_contained needs data.format sst2 or trec")


def test_no_cache_outside_fp32_says_when_the_tokens_agree(lm_run, capsys) -> None:
    argv = ["sample", str(lm_run), "--prompt", "the", "--max-new", "3", "--no-cache"]
    assert main([*argv, "--precision", "fp32"]) == 0
    assert "--no-cache" not in capsys.readouterr().err
    assert main([*argv, "--precision", "bf16"]) == 0
    assert "gives the cached path's tokens in fp32" in capsys.readouterr().err
