"""The one source of settings: ``config.yaml`` (every default, commented), ``--configfile`` overlays
and experiment overrides, merged the way Snakemake merges config files, validated against the
JSON Schemas in workflow/schemas and returned as frozen :class:`Section` objects.

Every object the schemas describe with ``properties`` is strict: each listed key is required and no
other key is allowed (the loader adds ``required`` and ``additionalProperties: false``), so code
never needs a default of its own. Adding a setting is two edits: its schema entry and its commented
line in config.yaml. ``config.schema.yaml`` describes the top level and the ``data`` section and
refers to one schema file per other section (``allinone.schema.yaml``, ...).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from .errors import TrafficfmError

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"
CONFIG_FILE = Path(__file__).resolve().parents[2] / "config.yaml"  # the repository's defaults
SECTIONS = ("data", "allinone", "retrieval", "submission")


class ConfigError(TrafficfmError, ValueError):
    """The config does not match its schema; the message names the key and the rule broken."""


# --------------------------------------------------------------------------------- frozen settings
class Section(Mapping):
    """A validated config section: read-only, by attribute (``s.train.lr``) or by key (``s["lr"]``).

    Nested mappings are Sections, lists are tuples. ``to_dict()`` gives plain dicts and lists (for
    fingerprints, Snakemake params and files). There is no ``get``: every key exists."""

    __slots__ = ("_values", "_path")

    def __init__(self, values: Mapping, path: str = ""):
        frozen = {str(k): _freeze(v, f"{path}.{k}" if path else str(k)) for k, v in values.items()}
        object.__setattr__(self, "_values", frozen)
        object.__setattr__(self, "_path", path)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"setting {self._path + '.' if self._path else ''}{name} does not exist "
                                 f"(keys: {', '.join(self._values)})") from None

    def __getitem__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise KeyError(f"setting {self._path + '.' if self._path else ''}{key} does not exist") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __setattr__(self, name, value):
        raise AttributeError(f"settings are read-only ({self._path or 'config'}.{name}); use overrides")

    def get(self, key, default=None):  # noqa: D102 (a default here would be a second source)
        raise AttributeError(f"settings have every key: use {self._path or 'config'}.{key}, not .get()")

    def to_dict(self) -> dict:
        return {k: _thaw(v) for k, v in self._values.items()}

    def replace(self, *overrides: str | Mapping) -> Section:
        """A copy with ``overrides`` merged in (same forms as :func:`load`); not re-validated."""
        return Section(apply_overrides(self.to_dict(), overrides), self._path)

    def __reduce__(self):
        return (Section, (self.to_dict(), self._path))

    def __repr__(self) -> str:
        return f"Section({self._path or 'config'}: {self.to_dict()!r})"


def _freeze(value, path: str):
    if isinstance(value, Mapping):
        return Section(value, path)
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v, f"{path}[{i}]") for i, v in enumerate(value))
    return value


def _thaw(value):
    if isinstance(value, Section):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def plain(value):
    """Plain dicts and lists of a Section (or of anything holding Sections); other values as they are."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


# ------------------------------------------------------------------------------------- validation
def _strict(schema):
    """Every object with ``properties`` requires all of them and allows no other key."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if isinstance(schema.get("properties"), dict):
            schema["required"] = list(schema["properties"])
            schema.setdefault("additionalProperties", False)
        return schema
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@lru_cache(maxsize=4)
def _validator(schema_dir: str) -> Draft202012Validator:
    directory = Path(schema_dir)

    def retrieve(uri: str) -> Resource:
        return Resource.from_contents(_strict(yaml.safe_load((directory / uri).read_text())))

    schema = _strict(yaml.safe_load((directory / "config.schema.yaml").read_text()))
    return Draft202012Validator(schema, registry=Registry(retrieve=retrieve))


def validate_config(config: dict, schema_dir: str | Path = SCHEMA_DIR, source: str = "config") -> dict:
    """Raise :class:`ConfigError` listing every violation as ``key.path: message``."""
    validator = _validator(str(schema_dir))
    problems = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if problems:
        lines = []
        for problem in problems:
            key = ".".join(str(p) for p in problem.absolute_path) or "(top level)"
            lines.append(f"{key}: {problem.message}")
        raise ConfigError(f"{source} is invalid:\n  " + "\n  ".join(lines))
    return config


# ---------------------------------------------------------------------------------------- loading
def merge(base: dict, update: Mapping) -> dict:
    """Recursive dict update (Snakemake's semantics for several config files)."""
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = plain(value)
    return base


def apply_overrides(config: dict, overrides: Iterable[str | Mapping]) -> dict:
    """Merge experiment overrides into ``config``: nested mappings, or ``"dotted.key=value"`` strings
    whose value is read as YAML (``allinone.train.lr=1e-3``, ``allinone.model.freeze=[]``)."""
    for item in overrides:
        if isinstance(item, Mapping):
            merge(config, item)
            continue
        key, sep, text = str(item).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r}: expected dotted.key=value")
        nested: dict = {}
        target = nested
        *parents, leaf = key.strip().split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = _yaml_value(text)
        merge(config, nested)
    return config


def _yaml_value(text: str):
    """A YAML scalar or flow collection; numbers such as 1e-4 (a string to YAML 1.1) are numbers."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def load_config(path: str | Path = CONFIG_FILE, *overlays: str | Path,
                overrides: Iterable[str | Mapping] = ()) -> dict:
    """The merged, validated config as plain dicts (what Snakemake's ``config`` holds)."""
    config = yaml.safe_load(Path(path).read_text()) or {}
    for overlay in overlays:
        merge(config, yaml.safe_load(Path(overlay).read_text()) or {})
    apply_overrides(config, overrides)
    sources = ", ".join(map(str, (path, *overlays))) + (" and overrides" if overrides else "")
    return validate_config(config, source=sources)


def settings_of(config: Mapping, source: str = "config") -> Section:
    """Validate a merged config (e.g. Snakemake's ``config``) and freeze it."""
    config = copy.deepcopy(plain(config))
    return Section(validate_config(config, source=source))


def load(*overlays: str | Path, overrides: Iterable[str | Mapping] = (), base: str | Path = CONFIG_FILE) -> Section:
    """config.yaml + ``overlays`` + ``overrides``, validated and frozen: the settings every stage,
    test and command-line run reads (sections ``data``, ``allinone``, ``retrieval``, ``submission``)."""
    return Section(load_config(base, *overlays, overrides=list(overrides)))
