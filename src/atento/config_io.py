"""Reading and writing configs: YAML files and nested dicts into a validated `Config`, with
dotted overrides, deprecated keys and the migration of configs of earlier releases.

The schema is `atento.config`; this module sits above `atento.registry`, where it finds the
`data` section of a config's `task` and the `model` section of its `model.arch`, so a misspelt
key, a key the chosen architecture does not use, or a value of the wrong type is a one-line
`AtentoError` that names it (and suggests the closest valid key) instead of being ignored.
Validation happens here, once; the factories only build.

    cfg = load_config("configs/dates.yaml", overrides=["train.max_steps=100"])
    dump_config(cfg, run_dir / "config.yaml")

Deprecated keys keep working with a warning: `train.bf16` and `search.bf16` (now
`runtime.precision` and `search.precision`) and `train.threads` (now `runtime.threads`).
`config_from_dict(raw, migrate=True)` also reads the flat model sections of run directories
written before the sections were split, dropping (with a note) keys the architecture does not use.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from atento.config import Config, config_to_dict
from atento.errors import AtentoError, warn
from atento.registry import architecture, task_class


def section_classes(raw: dict | None) -> tuple[type, type]:
    """The classes of the `data` and `model` sections that the `task` and `model.arch` of the
    raw config `raw` choose (translation and rnn when not given)."""
    raw = raw or {}
    data_cls = task_class(_coerce(raw.get("task", "translation"), str, "task")).data_config
    model = raw.get("model") if isinstance(raw.get("model"), dict) else {}
    arch = architecture(_coerce(model.get("arch", "rnn"), str, "model.arch"))
    return data_cls, arch.config_cls


def _field_types(cls: type, raw: dict | None = None) -> dict[str, Any]:
    """Declared types of `cls`'s fields; for `Config`, `data` and `model` are the classes that
    the task and `model.arch` in `raw` choose."""
    hints = typing.get_type_hints(cls)
    types_ = {f.name: hints[f.name] for f in fields(cls)}
    if cls is Config:
        types_["data"], types_["model"] = section_classes(raw)
    return types_


ON_OFF_KEYS = ("runtime.compile",)  # str keys whose on / off YAML reads as true / false


def _coerce(value: Any, typ: Any, key: str) -> Any:
    """Convert a YAML / command-line value to the declared type or raise naming the key."""
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(typ):
            return None  # an optional key left to its default (`null` in a dumped config)
        typ = next(t for t in typing.get_args(typ) if t is not type(None))
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
    elif typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif typ is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    elif typ is str and isinstance(value, bool) and key in ON_OFF_KEYS:
        return "on" if value else "off"  # YAML 1.1 reads a bare on / off as a bool
    name = getattr(typ, "__name__", str(typ))
    raise AtentoError(f"config: {key} must be {name}, got {value!r}")


def _unknown(key: str, valid: list[str], prefix: str, where: str = "") -> AtentoError:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" (did you mean {prefix}{close[0]}?)" if close else f" (valid: {', '.join(valid)})"
    return AtentoError(f"config: unknown key {prefix}{key}{where}{hint}")


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        where = prefix.rstrip(".")
        if where:
            raise AtentoError(f"config: {where} is a section; set one of its keys")
        raise AtentoError("config: the top level must be a mapping")
    types_ = _field_types(cls, raw)
    kwargs = {}
    for key, value in raw.items():
        if key not in types_:
            where = ""
            if prefix == "model." and "arch" in types_:
                where = f" for model.arch={raw.get('arch', 'rnn')}"
            raise _unknown(str(key), list(types_), prefix, where)
        typ = types_[key]
        if is_dataclass(typ):
            kwargs[key] = _build(typ, value, f"{prefix}{key}.")
        elif isinstance(value, dict):
            raise AtentoError(f"config: {prefix}{key} has no sub-keys")
        else:
            kwargs[key] = _coerce(value, typ, f"{prefix}{key}")
    if cls is Config:  # the task's and the architecture's sections, even when not given
        for key in ("data", "model"):
            kwargs.setdefault(key, types_[key]())
    return cls(**kwargs)


def _set_dotted(raw: dict, dotted: str, value: Any) -> None:
    """Write `value` at `a.b.c` into nested dicts (names are checked when the config is built,
    against the sections that the final task and model.arch choose)."""
    parts = dotted.split(".")
    if not all(parts):
        raise AtentoError(f"config: override key {dotted!r} is not a dotted key path")
    node = raw
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            if part in node and node[part] is not None:
                raise AtentoError(f"config: {dotted.rsplit('.', 1)[0]} has no sub-keys")
            node[part] = {}
        node[part] = dict(node[part])
        node = node[part]
    node[parts[-1]] = value


# old key -> (new key, value conversion)
DEPRECATED: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "train.bf16": (
        "runtime.precision",
        lambda v: "bf16" if _coerce(v, bool, "train.bf16") else "fp32",
    ),  # noqa: E501
    "search.bf16": (
        "search.precision",
        lambda v: "bf16" if _coerce(v, bool, "search.bf16") else "fp32",
    ),  # noqa: E501
    "train.threads": ("runtime.threads", lambda v: _coerce(v, int, "train.threads")),
}


def _apply_aliases(raw: dict, *, quiet: bool, explicit: set[str]) -> list[str]:
    """Rewrite deprecated keys in `raw` to their new names; returns what was rewritten."""
    done = []
    for old, (new, convert) in DEPRECATED.items():
        section, key = old.split(".")
        node = raw.get(section)
        if not isinstance(node, dict) or key not in node:
            continue
        value = convert(node.pop(key))
        new_section, new_key = new.split(".")
        target = raw.setdefault(new_section, {})
        if not isinstance(target, dict):
            continue  # reported as "is a section" when built
        if new in explicit:  # the new key, set explicitly, wins
            continue
        target[new_key] = value
        done.append(f"{old} -> {new}={value}")
        if not quiet:
            warn(f"config: {old} is deprecated; use {new}={value} (read as that)")
    return done


def _migrate_model(raw: dict) -> list[str]:
    """Drop the keys of a flat (pre-split) model section that its architecture does not use."""
    model = raw.get("model")
    if not isinstance(model, dict):
        return []
    cls = architecture(str(model.get("arch", "rnn"))).config_cls
    names = {f.name for f in fields(cls)}
    dropped = sorted(k for k in model if k not in names)
    raw["model"] = {k: v for k, v in model.items() if k in names}
    return dropped


def _explicit_keys(raw: dict, prefix: str = "") -> set[str]:
    keys = set()
    for k, v in raw.items():
        keys.add(prefix + str(k))
        if isinstance(v, dict):
            keys |= _explicit_keys(v, f"{prefix}{k}.")
    return keys


def config_from_dict(
    raw: dict | None, overrides: list[str] = (), *, migrate: bool = False
) -> Config:
    """Build a validated Config from a nested dict plus `key.path=value` overrides.

    `migrate=True` reads configs saved by earlier releases (run directories): deprecated keys
    are renamed quietly and model keys the architecture does not use are dropped, with a note.
    """
    raw = _deep_copy(raw or {})
    if not isinstance(raw, dict):
        raise AtentoError("config: the top level must be a mapping")
    notes = _apply_aliases(raw, quiet=migrate, explicit=_explicit_keys(raw))
    if migrate:
        dropped = _migrate_model(raw)
        if dropped:
            notes.append(f"dropped model keys {raw['model'].get('arch', 'rnn')} does not use: "
                         + ", ".join(dropped))  # fmt: skip
    else:
        notes = []
    for item in overrides:
        if "=" not in item:
            raise AtentoError(f"config: override {item!r} must look like key.path=value")
        key, value = (part.strip() for part in item.split("=", 1))
        try:
            value = yaml.safe_load(value) if value else ""
        except yaml.YAMLError as exc:
            raise AtentoError(
                f"config: override {item!r} has a value that is not valid YAML "
                f"({str(exc).splitlines()[0]})"
            ) from None
        if key in DEPRECATED:  # an override of an old key overrides the file's new key
            new, convert = DEPRECATED[key]
            value = convert(value)
            warn(f"config: {key} is deprecated; use {new}={value} (read as that)")
            key = new
        _set_dotted(raw, key, value)
    if notes:
        warn("note: config of an older release migrated (" + "; ".join(notes) + ")")
    cfg = _build(Config, raw, "")
    accepts = task_class(cfg.task).architectures  # each task declares the ones it takes
    if accepts and cfg.model.arch not in accepts:
        raise AtentoError(f"config: task={cfg.task} needs model.arch={' or '.join(accepts)}, "
                          f"not {cfg.model.arch}")  # fmt: skip
    return cfg.validate()


def _deep_copy(raw: Any) -> Any:
    if isinstance(raw, dict):
        return {k: _deep_copy(v) for k, v in raw.items()}
    return raw


def load_config(path: str | Path, overrides: list[str] = ()) -> Config:
    """Read a YAML config file and apply overrides; AtentoError on any problem."""
    path = Path(path)
    if not path.is_file():
        raise AtentoError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise AtentoError(
            f"config: {path} is not UTF-8 text (invalid byte at offset {exc.start})"
        ) from None
    except yaml.YAMLError as exc:
        raise AtentoError(
            f"config: {path} is not valid YAML ({str(exc).splitlines()[0]})"
        ) from None
    return config_from_dict(raw, overrides)


def dump_config(cfg: Config, path: str | Path) -> None:
    """Write `cfg` as YAML (which `load_config` reads back)."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), encoding="utf-8")
