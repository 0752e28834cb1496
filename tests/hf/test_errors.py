"""Bad model directories: one line naming the file or the option, exit status 2, no run."""

from __future__ import annotations

import json

import pytest
import torch

from atento.cli.main import main

pytest.importorskip("transformers")

from .conftest import copy_dir


def _edit_config(d, **changes):
    path = d / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def _fails(argv, capsys, *words):
    code = main(argv, guard=False)
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "this must never run" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("atento import: error: ")
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


OPTIONS = [
    ("gpt2", {"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx"),
    ("gpt2", {"add_cross_attention": True}, "add_cross_attention"),
    ("gpt2", {"activation_function": "quick_gelu"}, "activation_function"),
    ("gpt2", {"scale_attn_weights": False}, "scale_attn_weights"),
    ("gpt2", {"architectures": ["GPT2ForTokenClassification"]}, "architectures"),
    ("bert", {"position_embedding_type": "relative_key"}, "position_embedding_type"),
    ("bert", {"is_decoder": True}, "is_decoder"),
    ("bert", {"hidden_act": "mish"}, "hidden_act"),
    ("bert", {"problem_type": "multi_label_classification"}, "problem_type"),
    ("bert", {"model_type": "roberta"}, "model_type"),
]


@pytest.mark.parametrize(("family", "changes", "option"), OPTIONS)
def test_an_unsupported_option_is_one_line_naming_it(family, changes, option, gpt2_dir,
                                                     bert_dirs, tmp_path, capsys):  # fmt: skip
    src = gpt2_dir if family == "gpt2" else bert_dirs["classify"]
    d = copy_dir(src, tmp_path / "model")
    _edit_config(d, **changes)
    _fails(["import", "hf", str(d), "--out", str(tmp_path / "run")], capsys, option,
           "config.json")  # fmt: skip
    assert not (tmp_path / "run").exists()


def test_weights_of_another_config(gpt2_dir, tmp_path, capsys):
    d = copy_dir(gpt2_dir, tmp_path / "layers")
    _edit_config(d, n_layer=3)
    _fails(["import", "hf", str(d), "--out", str(tmp_path / "r1")], capsys, "h.2.")
    d = copy_dir(gpt2_dir, tmp_path / "width")
    _edit_config(d, n_inner=128)
    _fails(["import", "hf", str(d), "--out", str(tmp_path / "r2")], capsys, "do not fit")


def test_a_tokenizer_of_another_vocabulary(gpt2_dir, tmp_path, capsys):
    d = copy_dir(gpt2_dir, tmp_path / "model")
    config = json.loads((d / "config.json").read_text())
    _edit_config(d, vocab_size=config["vocab_size"] + 7)
    _fails(["import", "hf", str(d), "--out", str(tmp_path / "run")], capsys, "tokenizer.json",
           "vocab_size")  # fmt: skip


def test_missing_files(gpt2_dir, tmp_path, capsys):
    d = copy_dir(gpt2_dir, tmp_path / "noweights")
    (d / "model.safetensors").unlink()
    _fails(["import", "hf", str(d), "--out", str(tmp_path / "r1")], capsys, "model.safetensors")
    d = copy_dir(gpt2_dir, tmp_path / "notok")
    (d / "tokenizer.json").unlink()
    _fails(["import", "hf", str(d), "--out", str(tmp_path / "r2")], capsys, "tokenizer")
    _fails(["import", "hf", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r3")], capsys,
           "nowhere")  # fmt: skip
    d = copy_dir(gpt2_dir, tmp_path / "noconfig")
    (d / "config.json").unlink()
    _fails(["import", "hf", str(d), "--out", str(tmp_path / "r4")], capsys, "config.json")


class Payload:
    """A pickled object whose loading would run code."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_pickle_that_needs_code_is_refused_unexecuted(gpt2_dir, tmp_path, capsys):
    import safetensors.torch

    d = copy_dir(gpt2_dir, tmp_path / "model")
    state = safetensors.torch.load_file(str(d / "model.safetensors"))
    (d / "model.safetensors").unlink()
    torch.save({**state, "evil": Payload()}, d / "pytorch_model.bin", pickle_protocol=2)
    _fails(["import", "hf", str(d), "--out", str(tmp_path / "run")], capsys,
           "pytorch_model.bin", "needs code")  # fmt: skip
    # the same weights as a plain state dict load through weights_only
    torch.save(state, d / "pytorch_model.bin")
    assert main(["import", "hf", str(d), "--out", str(tmp_path / "ok")], guard=False) == 0


def test_an_existing_run_is_not_overwritten(gpt2_dir, gpt2_run, capsys):
    _fails(["import", "hf", str(gpt2_dir), "--out", str(gpt2_run)], capsys, "already holds")


def test_sharded_weights_import_to_the_same_model_and_a_missing_shard_is_named(
    gpt2_dir, gpt2_run, tmp_path, capsys
):
    from atento.rundir import load_run

    from .conftest import transformers

    d = copy_dir(gpt2_dir, tmp_path / "sharded")
    (d / "model.safetensors").unlink()
    model = transformers.GPT2LMHeadModel.from_pretrained(gpt2_dir)
    model.save_pretrained(d, max_shard_size="100KB")
    shards = sorted(d.glob("model-*.safetensors"))
    assert len(shards) > 1 and (d / "model.safetensors.index.json").is_file()
    run = tmp_path / "run"
    assert main(["import", "hf", str(d), "--out", str(run)], guard=False) == 0
    ours, ref = load_run(run).model.state_dict(), load_run(gpt2_run).model.state_dict()
    assert all(torch.equal(ours[k], ref[k]) for k in ref)
    shards[-1].unlink()
    capsys.readouterr()  # the library's progress bars
    _fails(["import", "hf", str(d), "--out", str(tmp_path / "r2")], capsys, shards[-1].name)
