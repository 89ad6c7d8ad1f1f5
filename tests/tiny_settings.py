"""Settings for tests, built by the same loader as every run: config.yaml + tests/tiny.yaml (a tiny
demo release) + tests/tiny-models.yaml (tiny models, a few steps) + the test's own overrides."""

from __future__ import annotations

from pathlib import Path

from trafficfm import config

TESTS = Path(__file__).resolve().parent
OVERLAYS = (TESTS / "tiny.yaml", TESTS / "tiny-models.yaml")


def tiny(*overrides) -> config.Section:
    """The whole settings tree; ``overrides`` as :func:`trafficfm.config.apply_overrides` takes them."""
    return config.load(*OVERLAYS, overrides=overrides)


def tiny_allinone(steps: int = 6, **train) -> config.Section:
    """The ``allinone`` settings of the tiny model with ``steps`` steps and ``train`` overrides."""
    return tiny({"allinone": {"train": {"steps": steps, **train}}}).allinone


# The retrieval unit tests' model and schedule: every layer trains, plain crops, no caches.
RETRIEVAL_TESTS = {
    "model": {"unlock_image": -1, "unlock_text": -1},
    "train": {"epochs": 2, "batch_size": 16, "per_attribute": 2, "warmup_steps": 2, "head_lr": 2.0e-3,
              "checkpoint_every": 1000, "cache_frozen_image": False,
              "augment": {"scale_min": 0.8, "hflip": True, "camera": None, "views": 0}},
}


def tiny_retrieval(*overrides) -> config.Section:
    """The ``retrieval`` settings of the retrieval unit tests, with ``overrides`` (of that section)."""
    return tiny({"retrieval": RETRIEVAL_TESTS}, *({"retrieval": o} if isinstance(o, dict) else f"retrieval.{o}"
                                                   for o in overrides)).retrieval
