"""Build a ``GanforgeConfig``: dataclass defaults < the GAN's YAML defaults < a user YAML < dotted
``--set key=value`` overrides. Unknown keys and wrongly typed values fail with a message that
names the key (and the closest valid key when it looks like a typo)."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import difflib
import typing
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from pipelines.config.schema import GanforgeConfig
from pipelines.errors import ConfigError

__all__ = ["ConfigError", "apply_overrides", "build", "build_dataclass", "flatten", "load", "to_dict"]


def _yaml_error(path: Path | str, exc: yaml.YAMLError) -> ConfigError:
    """One line, as compilers write it (file:line:column), in place of the parser's dump of
    the offending lines; lines and columns counted from 1, as editors show them."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    return ConfigError(f"{where}: malformed YAML: {problem}" + (f" ({context})" if context else ""))


def _yaml_file(path: Path | str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise _yaml_error(path, exc) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must hold a mapping at the top level")
    return data


def gan_defaults(gan: str) -> dict[str, Any]:
    """The per-GAN defaults shipped in ``pipelines/configs/<gan>.yaml`` (empty if none)."""
    resource = resources.files("pipelines.configs").joinpath(f"{gan}.yaml")
    if not resource.is_file():
        return {}
    return yaml.safe_load(resource.read_text()) or {}


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_value(raw: str) -> Any:
    """A value typed by a user, read as a YAML scalar: ``"4e-4"`` -> 0.0004, ``"true"`` -> True."""
    value = yaml.safe_load(raw) if raw.strip() else ""
    # YAML 1.1 reads "4e-4" as a string (it wants "4.0e-4"); users type the short form.
    if isinstance(value, str):
        with contextlib.suppress(ValueError):  # any other string stays a string
            value = float(value)
    return value


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optim.lr_d=4e-4"`` -> (["optim", "lr_d"], 0.0004)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not of the form key.path=value")
    return key.strip().split("."), parse_value(raw)


def set_dotted(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {'.'.join(path)}: {part} is not a section")
    node[path[-1]] = value


def _coerce(key: str, value: Any, kind: Any) -> Any:
    if kind is Any:
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif kind is str:
        if isinstance(value, str):
            return value
        if isinstance(value, bool):  # YAML 1.1 reads on/off (and yes/no) as booleans: amp=off means "off"
            return "on" if value else "off"
    else:
        return value
    name = getattr(kind, "__name__", str(kind))
    raise ConfigError(f"{key} must be of type {name}, got {value!r}")


def _reject_unknown(keys: Iterable[str], valid: list[str], what: str, prefix: str = "") -> None:
    for key in keys:
        if key not in valid:
            hint = difflib.get_close_matches(key, valid, n=1)
            also = f" (did you mean {prefix}{hint[0]}?)" if hint else ""
            raise ConfigError(f"unknown config {what} {prefix}{key}{also}; valid: {', '.join(valid)}")


def build_dataclass(cls: type, values: dict[str, Any], prefix: str) -> Any:
    """Instantiate ``cls`` from a nested dict, recursing into dataclass-typed fields."""
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix.rstrip('.')} must be a section (mapping), got {values!r}")
    hints = typing.get_type_hints(cls)
    _reject_unknown(values, [f.name for f in dataclasses.fields(cls)], "key", prefix)
    kwargs = {}
    for key, value in values.items():
        kind = hints[key]
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            kwargs[key] = build_dataclass(kind, value, f"{prefix}{key}.")
        else:
            kwargs[key] = _coerce(f"{prefix}{key}", value, kind)
    try:
        return cls(**kwargs)
    except ValueError as exc:  # range checks in __post_init__ already name the key
        raise ConfigError(str(exc)) from exc


def build(tree: dict[str, Any]) -> GanforgeConfig:
    """A validated ``GanforgeConfig`` from a full dict tree (e.g. the one sent to Ray workers)."""
    tree = copy.deepcopy(tree)
    gan_name = tree.pop("gan", None)
    if not gan_name:
        raise ConfigError("config has no 'gan' key")
    import gan_core  # torch: loaded when a config is built, not when the CLI starts

    try:
        gan_cls = gan_core.get(gan_name)
    except KeyError as exc:
        raise ConfigError(exc.args[0]) from exc
    hints = typing.get_type_hints(GanforgeConfig)
    sections = [f.name for f in dataclasses.fields(GanforgeConfig) if f.name != "gan"]
    _reject_unknown(tree, sections, "section")
    built = {}
    for name in sections:
        kind = gan_cls.Config if name == "model" else hints[name]
        built[name] = build_dataclass(kind, tree.get(name) or {}, f"{name}.")
    return GanforgeConfig(gan=gan_name, **built)


def load(gan: str, config_files: str | Iterable[str] | None = None, overrides: Iterable[str] = ()) -> GanforgeConfig:
    """The config of a run of ``gan``: defaults, the GAN's YAML, each of ``config_files`` in
    turn (a later file wins), overrides."""
    tree: dict[str, Any] = {"gan": gan}
    tree = _deep_merge(tree, gan_defaults(gan))
    for config_file in [config_files] if isinstance(config_files, str) else config_files or ():
        tree = _deep_merge(tree, _yaml_file(config_file))
        tree["gan"] = gan
    return build(apply_overrides(tree, overrides))


def apply_overrides(tree: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        set_dotted(tree, path, value)
    return tree


def to_dict(cfg: GanforgeConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"optim": {"lr_d": 1e-4}} -> {"optim.lr_d": 1e-4}: MLflow params, Tune search keys."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
