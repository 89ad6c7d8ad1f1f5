"""Config validation against the JSON Schemas in workflow/schemas, with errors that name the key.

``config.schema.yaml`` describes the top level and the ``data`` section and refers to one schema
file per other section (``allinone.schema.yaml``, ...), so each stage owns its schema.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"


class ConfigError(ValueError):
    """The config does not match its schema; the message names the key and the rule broken."""


def _registry(schema_dir: Path) -> Registry:
    def retrieve(uri: str) -> Resource:
        return Resource.from_contents(yaml.safe_load((schema_dir / uri).read_text()))

    return Registry(retrieve=retrieve)


def validate_config(config: dict, schema_dir: str | Path = SCHEMA_DIR, source: str = "config") -> dict:
    """Raise :class:`ConfigError` listing every violation as ``key.path: message``."""
    schema_dir = Path(schema_dir)
    schema = yaml.safe_load((schema_dir / "config.schema.yaml").read_text())
    validator = Draft202012Validator(schema, registry=_registry(schema_dir))
    problems = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if problems:
        lines = []
        for problem in problems:
            key = ".".join(str(p) for p in problem.absolute_path) or "(top level)"
            lines.append(f"{key}: {problem.message}")
        raise ConfigError(f"{source} is invalid:\n  " + "\n  ".join(lines))
    return config


def load_config(path: str | Path, *overlays: str | Path) -> dict:
    """Read a config file and merge overlays the way Snakemake's --configfile does, then validate."""
    config = yaml.safe_load(Path(path).read_text()) or {}
    for overlay in overlays:
        merge(config, yaml.safe_load(Path(overlay).read_text()) or {})
    return validate_config(config, source=", ".join(map(str, (path, *overlays))))


def merge(base: dict, update: dict) -> dict:
    """Recursive dict update (Snakemake's semantics for several config files)."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base
