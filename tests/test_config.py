"""Config: typed sections, dotted overrides, one-line errors that name the key."""

import pytest

from atento.config_io import config_from_dict, dump_config, load_config
from atento.errors import AtentoError
from conftest import CONFIGS


def test_defaults_and_overrides_are_typed():
    cfg = config_from_dict({}, ["train.max_steps=7", "model.dropout=0.5", "data.joint_vocab=no"])
    assert cfg.train.max_steps == 7 and isinstance(cfg.train.max_steps, int)
    assert cfg.model.dropout == 0.5 and cfg.data.joint_vocab is False


def test_nested_override_into_split_files():
    cfg = config_from_dict({"data": {"corpus": "files"}}, ["data.train.src=a", "data.train.tgt=b"])
    assert (cfg.data.train.src, cfg.data.train.tgt) == ("a", "b")


@pytest.mark.parametrize(
    "override,message",
    [
        ("train.max_step=3", "unknown key train.max_step (did you mean train.max_steps?)"),
        ("modle.dropout=0.1", "unknown key modle (did you mean model?)"),
        ("model.hidden_size=abc", "model.hidden_size must be int"),
        ("model.attention=foo", "model.attention='foo' is not valid"),
        ("train.ema_decay=1.0", "train.ema_decay=1.0 is not valid"),
        ("train", "must look like key.path=value"),
        ("data.train=x", "data.train is a section"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(AtentoError) as err:
        config_from_dict({}, [override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_key_in_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  hiden_size: 3\n")
    with pytest.raises(AtentoError, match="did you mean model.hidden_size"):
        load_config(path)


def test_round_trip_through_yaml(tmp_path):
    cfg = load_config(CONFIGS / "multi30k_fr_en_rnn.yaml", ["train.lr=0.01"])
    dump_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg


def test_optional_key_search_ban_unk(tmp_path):
    assert config_from_dict({}).search.ban_unk is None  # the task decides
    assert config_from_dict({}, ["search.ban_unk=true"]).search.ban_unk is True
    assert config_from_dict({"search": {"ban_unk": None}}).search.ban_unk is None  # `null`
    cfg = config_from_dict({}, ["search.ban_unk=no"])
    dump_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml").search.ban_unk is False
    with pytest.raises(AtentoError, match="search.ban_unk must be bool"):
        config_from_dict({}, ["search.ban_unk=maybe"])


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path):
    overrides = ["data.train.src=a", "data.train.tgt=b"] if "files" in path.name else []
    load_config(path, overrides)


def test_attention_and_no_attention_configs_differ_only_in_attention():
    a = load_config(CONFIGS / "multi30k_fr_en_rnn.yaml")
    b = load_config(CONFIGS / "multi30k_fr_en_rnn_none.yaml")
    assert (a.model.attention, b.model.attention) == ("additive", "none")
    b.model.attention = "additive"
    assert a == b


@pytest.mark.parametrize(
    "raw,message",
    [
        ({"model": {"arch": "transformer", "hidden_size": 8}},
         "unknown key model.hidden_size for model.arch=transformer"),
        ({"model": {"arch": "rnn", "d_model": 8}}, "unknown key model.d_model for model.arch=rnn"),
        ({"model": {"arch": "lstm"}}, "model.arch='lstm' is not valid"),
        ({"task": "painting"}, "task='painting' is not valid"),
        ({"runtime": {"device": "tpu"}}, "runtime.device='tpu' is not valid"),
        ({"runtime": {"precision": "int4"}}, "runtime.precision='int4' is not valid"),
        ({"search": {"precision": "fp8"}}, "search.precision='fp8' is not valid"),
    ],
)  # fmt: skip
def test_sections_follow_the_architecture_and_task(raw, message):
    with pytest.raises(AtentoError) as err:
        config_from_dict(raw)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_an_override_can_switch_the_architecture_and_set_its_keys():
    cfg = config_from_dict({"model": {"arch": "rnn"}}, ["model.arch=transformer", "model.heads=2"])
    assert cfg.model.arch == "transformer" and cfg.model.heads == 2
    with pytest.raises(AtentoError, match="unknown key model.heads for model.arch=rnn"):
        config_from_dict({}, ["model.heads=2"])


@pytest.mark.parametrize(
    "override,key,value",
    [("train.bf16=true", "runtime.precision", "bf16"), ("train.bf16=false", "runtime.precision",
      "fp32"), ("search.bf16=yes", "search.precision", "bf16"), ("train.threads=3",
      "runtime.threads", 3)],
)  # fmt: skip
def test_deprecated_keys_still_work_with_a_warning(override, key, value, capsys):
    cfg = config_from_dict({}, [override])
    section, name = key.split(".")
    assert getattr(getattr(cfg, section), name) == value
    assert f"{override.split('=')[0]} is deprecated; use {key}" in capsys.readouterr().err


def test_the_new_key_wins_over_its_deprecated_alias(capsys):
    cfg = config_from_dict({"train": {"bf16": True}, "runtime": {"precision": "fp32"}})
    assert cfg.runtime.precision == "fp32"


def test_flat_config_of_an_older_release_is_migrated(capsys):
    flat = {"model": {"arch": "transformer", "d_model": 32, "heads": 4, "cell": "gru",
                      "hidden_size": 64, "attention": "additive"},
            "train": {"bf16": True, "threads": 2}, "search": {"bf16": False}}  # fmt: skip
    with pytest.raises(AtentoError, match="model.cell for model.arch=transformer"):
        config_from_dict(flat)
    capsys.readouterr()
    cfg = config_from_dict(flat, migrate=True)
    assert cfg.model.d_model == 32 and not hasattr(cfg.model, "cell")
    assert (cfg.runtime.precision, cfg.search.precision, cfg.runtime.threads) == ("bf16", "fp32", 2)
    err = capsys.readouterr().err
    assert "dropped model keys transformer does not use: attention, cell, hidden_size" in err
    assert "deprecated" not in err  # one note, not a warning per key


def test_shipped_configs_choose_device_and_precision_automatically():
    for path in sorted(CONFIGS.glob("*.yaml")):
        overrides = ["data.train.src=a", "data.train.tgt=b"] if "files" in path.name else []
        cfg = load_config(path, overrides)
        assert (cfg.runtime.device, cfg.runtime.precision, cfg.search.precision) == (
            "auto", "auto", "run"), path.name  # fmt: skip


def test_the_schema_imports_no_registry_and_the_loader_chooses_the_sections():
    import subprocess
    import sys

    code = "import sys, atento.config; print(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)  # fmt: skip
    above = ("atento.config_io", "atento.registry", "atento.components", "atento.models",
             "atento.tasks", "torch")  # fmt: skip
    loaded = done.stdout.split()
    assert "atento.config" in loaded
    assert not [m for m in loaded if m.startswith(above)], loaded
    from atento.config import Config
    from atento.config_io import section_classes

    with pytest.raises(TypeError, match="data"):
        Config()  # its sections are the task's and the architecture's: config_io chooses them
    data_cls, model_cls = section_classes({"model": {"arch": "transformer"}})
    cfg = config_from_dict({"model": {"arch": "transformer"}})
    assert model_cls.__name__ == "TransformerConfig"
    assert (type(cfg.data), type(cfg.model)) == (data_cls, model_cls)
