"""What a training step sees: the training state (in the style of open_clip's), the per-part step
timer and the hooks through which a recipe adds diagnostics or decisions."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ..device import autocast
from ..distributed import DistInfo


@dataclass
class Hooks:
    """Extension points, called on every rank in order of registration:

    - ``step(state, figures)`` after each optimizer step, with that step's figures (losses, ...);
    - ``task(state, task, grads)`` in the AllInOne step after each task's backward pass, with that
      task's gradients of the shared parameters (backbone + pyramid) before they are summed: the
      place for per-task gradient norms or per-task gradient surgery;
    - ``evaluate(state, metrics)`` after each periodic evaluation (e.g. to keep the best weights).

    A hook may add figures to the next history entry with :meth:`TrainState.note`."""

    step: list[Callable] = field(default_factory=list)
    task: list[Callable] = field(default_factory=list)
    evaluate: list[Callable] = field(default_factory=list)


class PartTimer:
    """Seconds spent per part of the step (data, forward of each task, update, ...) since the last
    :meth:`take`, to show where time goes."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.mark = time.perf_counter()

    def start(self) -> None:
        self.mark = time.perf_counter()

    def lap(self, part: str) -> None:
        now = time.perf_counter()
        self.seconds[part] = self.seconds.get(part, 0.0) + now - self.mark
        self.mark = now

    def take(self, steps: int) -> dict[str, float]:
        """Mean seconds per step of each part over the last ``steps`` steps; starts a new window."""
        out = {k: round(v / max(steps, 1), 3) for k, v in self.seconds.items()}
        self.seconds = {}
        return out


@dataclass
class TrainState:
    """Everything a step needs. ``model`` is the bare module (for state dicts and parameters),
    ``net`` what the forward pass calls (the DistributedDataParallel wrapper when there are
    several processes). ``position`` is the track's place in its data (saved in checkpoints)."""

    model: nn.Module
    net: nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    precision: str
    dist: DistInfo
    total: int
    start: int
    stop: int
    step: int = 0
    history: list[dict] = field(default_factory=list)
    position: dict = field(default_factory=dict)
    hooks: Hooks = field(default_factory=Hooks)
    timer: PartTimer = field(default_factory=PartTimer)
    checkpoint_due: bool = False  # a track asks for a checkpoint after this step (e.g. an epoch's end)
    notes: dict = field(default_factory=dict)

    def autocast(self):
        """The forward pass's precision context (see :mod:`trafficfm.device`)."""
        return autocast(self.device, self.precision)

    def trainable(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def note(self, **figures) -> None:
        """Add figures (numbers) to the next history entry, e.g. from a hook."""
        self.notes.update(figures)
