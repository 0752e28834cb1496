"""Config: typed sections, dotted overrides, one-line errors that name the key."""

import pytest

from atento.config import config_from_dict, dump_config, load_config
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
