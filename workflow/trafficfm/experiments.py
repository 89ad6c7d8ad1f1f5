"""Experiments: named variants of a track's settings trained side by side, their ensembles, the
folders they write to, and which one each track packages (config section ``experiments``).

An experiment is a set of overrides of the ``allinone:`` or ``retrieval:`` section, merged the
way ``--configfile`` overlays merge and validated against the section's schema, so a typo stops
the run at start-up naming the experiment and the key. Experiments whose training settings are
equal share one trained model (an experiment that only changes inference, test-time augmentation
for example, trains nothing). An ensemble names member experiments of its track; it is predicted
by fusing their soft predictions and scored on validation like any experiment.

Every experiment and ensemble writes under ``results/<track>/experiments/<name>/``; the track's
documented paths (``results/<track>/val_metrics.json``, ...) hold the selected one
(``select: best`` = the highest validation score among experiments and ensembles).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .config import ConfigError, merge, validate_config
from .paths import experiment_dir

TRACKS = ("allinone", "retrieval")
BEST = "best"
# Validation score that ranks experiments (the key of each track's val_metrics.json).
SCORE_KEY = {"allinone": "score", "retrieval": "map10"}
# Settings that determine a trained model; experiments equal in these share one training.
TRAINING_KEYS = {"allinone": ("seed", "precision", "model", "train"), "retrieval": ("model", "train")}


def _plain(value):
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _unknown_keys(override: Mapping, base: Mapping, path: str) -> list[str]:
    """Dotted paths of override keys that the base section does not have."""
    out = []
    for key, value in override.items():
        here = f"{path}.{key}"
        if not isinstance(base, Mapping) or key not in base:
            out.append(here)
        elif isinstance(value, Mapping) and isinstance(base[key], Mapping):
            out += _unknown_keys(value, base[key], here)
    return out


def flatten(override: Mapping, prefix: str = "") -> dict:
    """``{"train": {"lr": 4e-3}}`` -> ``{"train.lr": 4e-3}`` (what differs from the base)."""
    out = {}
    for key, value in override.items():
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@dataclass(frozen=True)
class TrackPlan:
    """One track's experiments (merged sections), ensembles (member lists) and selection."""

    track: str
    settings: dict  # name -> the track's merged section
    overrides: dict  # name -> the declared overrides
    ensembles: dict  # name -> [member, ...]
    fusion: dict
    select: str

    @property
    def names(self) -> list[str]:
        """Experiments then ensembles, in declaration order."""
        return [*self.settings, *self.ensembles]

    def folder(self, name: str) -> str:
        return experiment_dir(self.track, name)

    def trained_by(self, name: str) -> str:
        """The experiment whose training gives ``name``'s model: the first one declared with equal
        training settings (itself unless it only changes inference)."""
        keys = TRAINING_KEYS[self.track]
        mine = {k: self.settings[name].get(k) for k in keys}
        return next(n for n, s in self.settings.items() if {k: s.get(k) for k in keys} == mine)

    @property
    def trained(self) -> list[str]:
        return [n for n in self.settings if self.trained_by(n) == n]

    @property
    def members(self) -> set[str]:
        """Experiments that some ensemble fuses (they write soft predictions)."""
        return {m for ms in self.ensembles.values() for m in ms}

    def candidates(self) -> list[str]:
        """What ``select`` chooses among: every name for ``best``, else the named one."""
        return self.names if self.select == BEST else [self.select]

    def choose(self, scores: Mapping[str, float]) -> str:
        """The selected name given validation scores (ties: the first declared)."""
        if self.select != BEST:
            return self.select
        return max(self.names, key=lambda n: (scores[n], -self.names.index(n)))

    def lead(self, name: str, scores: Mapping[str, float]) -> str:
        """The experiment whose model files stand for ``name``: itself, or an ensemble's
        best-scoring member."""
        if name in self.settings:
            return name
        members = self.ensembles[name]
        return max(members, key=lambda n: (scores[n], -members.index(n)))


def plan_track(config: Mapping, track: str) -> TrackPlan:
    """Merge and validate each experiment of ``track``; raise :class:`ConfigError` naming the
    experiment and the key on an unknown key, a wrong type, or a bad ensemble or selection."""
    config = _plain(config)
    section = config["experiments"]
    declared = section[track]
    settings, problems = {}, []
    for name, override in declared.items():
        override = override or {}
        where = f"experiments.{track}.{name}"
        unknown = _unknown_keys(override, config[track], track)
        if unknown:
            problems += [f"{where}: unknown key {key}" for key in unknown]
            continue
        merged = experiment_config(config, track, name)[track]
        try:
            validate_config({**config, track: merged}, source=where)
        except ConfigError as err:
            problems.append(str(err))
            continue
        settings[name] = merged
    ensembles = {n: list(m) for n, m in section["ensembles"][track].items()}
    for name, members in ensembles.items():
        where = f"experiments.ensembles.{track}.{name}"
        if name in declared:
            problems.append(f"{where}: the name is also an experiment's")
        problems += [f"{where}: member {m!r} is not an experiment of {track} ({', '.join(declared)})"
                     for m in members if m not in declared]
    select = section["select"][track]
    if select != BEST and select not in declared and select not in ensembles:
        problems.append(f"experiments.select.{track}: {select!r} is neither 'best' nor an experiment or "
                        f"ensemble of {track} ({', '.join([*declared, *ensembles])})")
    if problems:
        raise ConfigError("experiments are invalid:\n  " + "\n  ".join(problems))
    return TrackPlan(track, settings, {n: _plain(o or {}) for n, o in declared.items()}, ensembles,
                     dict(section["fusion"][track]), select)


def experiment_config(config: Mapping, track: str, name: str) -> dict:
    """The whole config with ``track``'s section replaced by experiment ``name``'s merged one."""
    config = _plain(config)
    return {**config, track: merge(copy.deepcopy(config[track]), config["experiments"][track][name] or {})}


# Rule wildcards that name an experiment of a track (workflow/rules/allinone.smk, retrieval.smk).
EXPERIMENT_WILDCARDS = {"aio_trained": "allinone", "aio_exp": "allinone",
                        "ret_trained": "retrieval", "ret_exp": "retrieval"}


def job_config(config: Mapping, wildcards: Mapping[str, str]) -> dict:
    """The config a job of a rule with these wildcards runs with: the experiment's, if a wildcard
    names one, else the config as it is."""
    for key, track in EXPERIMENT_WILDCARDS.items():
        if key in wildcards:
            return experiment_config(config, track, wildcards[key])
    return _plain(config)


def plan_experiments(config: Mapping) -> dict[str, TrackPlan]:
    return {track: plan_track(config, track) for track in TRACKS}


def read_scores(plan: TrackPlan, metrics: Mapping[str, str | Path]) -> dict[str, float]:
    """Validation score of each name from its val_metrics.json."""
    key = SCORE_KEY[plan.track]
    return {name: float(json.loads(Path(path).read_text())[key]) for name, path in metrics.items()}


def write_selection(plan: TrackPlan, metrics: Mapping[str, str | Path], out: str | Path) -> dict:
    """Choose and record: ``{"selected", "lead", "select", "score_key", "scores"}``."""
    import logging

    from . import atomic

    scores = read_scores(plan, metrics)
    chosen = plan.choose(scores)
    record = {"track": plan.track, "select": plan.select, "selected": chosen, "lead": plan.lead(chosen, scores),
              "kind": "ensemble" if chosen in plan.ensembles else "experiment",
              "members": plan.ensembles.get(chosen, [chosen]), "score_key": SCORE_KEY[plan.track],
              "scores": scores}
    atomic.write_json(out, record)
    logging.getLogger(__name__).info("%s: selected %s (%s %s)", plan.track, chosen, record["score_key"],
                                     scores.get(chosen))
    return record


def publish(sources: Mapping[str, str], targets: Mapping[str, str]) -> None:
    """Copy each source file or folder to the target of the same name, through a temporary name so
    a target is complete or absent. Copies, not links: Snakemake touches a rule's outputs, and a
    touched hard link would make the experiment's own files look newer than what was made from them."""
    import os
    import shutil
    import tempfile

    for key, target in targets.items():
        source, target = Path(sources[key]), Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent)) / target.name
        try:
            if source.is_dir():  # Snakemake's marker of the source folder is not part of the result
                shutil.copytree(source, tmp, copy_function=shutil.copyfile,
                                ignore=shutil.ignore_patterns(".snakemake_timestamp"))
            else:
                shutil.copyfile(source, tmp)
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp.parent, ignore_errors=True)
