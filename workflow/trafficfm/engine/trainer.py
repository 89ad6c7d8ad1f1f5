"""One training run, the same for both tracks: device, precision and processes; optimizer and
schedule; checkpoints and resume (:mod:`trafficfm.checkpoints`); the step loop with timing,
history, logging, periodic evaluation and hooks.

The track's ``step_fn(state)`` does one optimizer step's forward and backward passes (all tasks,
all accumulated micro-batches) and returns that step's figures: numbers (losses, ...) plus
``samples``, the samples it consumed over all processes. The trainer then clips the summed
gradient, steps the optimizer, moves the schedule on, records, logs, evaluates and checkpoints.
Under torchrun the same code runs DistributedDataParallel; rank 0 alone writes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from ..checkpoints import CheckpointStore
from ..config import plain
from ..device import resolve_device
from ..distributed import all_reduce_mean, init_distributed
from ..seeding import rng_state, set_rng_state
from .optim import adamw, lr_factor, set_lr
from .state import Hooks, TrainState

log = logging.getLogger(__name__)

# Training settings that change how often things happen or how fast, never the weights.
NO_EFFECT = ("num_workers", "checkpoint_every", "keep_checkpoints", "log_every", "eval_every", "eval_limit",
             "cache_max_mb")


def result_settings(train, **more) -> dict:
    """What a checkpoint's fingerprint covers: the ``train`` settings that change the result and
    ``more`` (model settings, seed, data identity, ...), as plain JSON-able values."""
    return {"train": {k: v for k, v in plain(train).items() if k not in NO_EFFECT}, **plain(more)}


class Trainer:
    """``Trainer(train, device=..., precision=..., checkpoint_dir=..., settings=result_settings(...))``.

    ``history``: ``"log"`` records the window means at each log line (AllInOne), ``"step"`` one
    entry per optimizer step (retrieval)."""

    def __init__(self, train, *, device: str, precision: str, checkpoint_dir: str | Path | None, settings: dict,
                 history: str = "log"):
        self.train = train
        wants_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
        self.dist = init_distributed("cuda" if wants_cuda else "cpu")
        self.device = resolve_device(device, self.dist.local_rank)
        self.precision = precision
        self.history = history
        self.store = (CheckpointStore(checkpoint_dir, settings, keep=int(train["keep_checkpoints"]),
                                      writer=self.dist.is_main) if checkpoint_dir else None)

    @property
    def fingerprint(self) -> str | None:
        return self.store.fingerprint if self.store else None

    def factor(self, step: int, total: int) -> float:
        t = self.train
        return lr_factor(step, total, int(t["warmup_steps"]), float(t["min_lr_ratio"]))

    # ------------------------------------------------------------------------------------ set-up
    def prepare(self, model: nn.Module, groups: list[dict], total: int, *, stop_after: int | None = None,
                wrap: tuple[nn.Module, dict] | None = None, hooks: Hooks | None = None) -> TrainState:
        """The state of a fresh or resumed run of ``total`` steps (this run stops ``stop_after`` steps
        in, leaving checkpoints only). ``wrap``: the module the forward pass calls and its
        DistributedDataParallel options (used as it is in a single process)."""
        optimizer = adamw(groups, self.train)
        net = wrap[0] if wrap else model
        state = TrainState(model=model, net=net, optimizer=optimizer, device=self.device, precision=self.precision,
                           dist=self.dist, total=int(total), start=0, stop=int(total), hooks=hooks or Hooks())
        found = self.store.resume() if self.store else None
        if found is not None:
            model.load_state_dict(found.state["model"])
            optimizer.load_state_dict(found.state["optimizer"])
            set_rng_state(found.state["rng"])
            state.history, state.position, state.step = found.state["history"], found.state["position"], found.step
        state.start = state.step
        state.stop = state.total if stop_after is None else min(state.total, state.step + int(stop_after))
        set_lr(optimizer, self.factor(state.step, state.total))
        if self.dist.enabled:
            dist.barrier()
            index = [self.device.index] if self.device.type == "cuda" else None
            state.net = DDP(net, device_ids=index, **(wrap[1] if wrap else {}))
        return state

    # --------------------------------------------------------------------------------- the loop
    def run(self, state: TrainState, step_fn: Callable[[TrainState], dict], *,
            evaluate: Callable[[TrainState], dict] | None = None, eval_every: int = 0,
            after_update: Callable[[TrainState], None] | None = None) -> bool:
        """Steps ``state.start`` .. ``state.stop``; True when the training reached its total."""
        log.info("training steps %d..%d of %d on %s (world %d, precision %s); fingerprint %s", state.step,
                 state.stop, state.total, state.device, state.dist.world_size, state.precision, self.fingerprint)
        clock = _Clock()
        state.timer.start()
        while state.step < state.stop:
            figures = step_fn(state)
            self._update(state, after_update)
            state.timer.lap("update")
            state.step += 1
            for hook in state.hooks.step:
                hook(state, figures)
            self._record(state, figures, clock)
            if evaluate and eval_every and state.step % eval_every == 0 and state.step < state.total \
                    and state.dist.is_main:
                metrics = evaluate(state)
                state.history.append({"step": state.step, "val": metrics})
                for hook in state.hooks.evaluate:
                    hook(state, metrics)
            self._checkpoint(state)
            state.timer.start()
        if self.dist.enabled:
            dist.barrier()
        return state.step >= state.total

    def _update(self, state: TrainState, after_update) -> None:
        if self.train["grad_clip"]:
            torch.nn.utils.clip_grad_norm_(state.trainable(), float(self.train["grad_clip"]))
        state.optimizer.step()
        state.optimizer.zero_grad(set_to_none=True)
        if after_update is not None:
            after_update(state)
        set_lr(state.optimizer, self.factor(state.step + 1, state.total))

    def _record(self, state: TrainState, figures: dict, clock: "_Clock") -> None:
        figures = dict(figures)
        clock.samples += int(figures.pop("samples", 0))
        for key, value in figures.items():
            clock.window.setdefault(key, []).append(value)
        if self.history == "step":
            state.history.append({"step": state.step, **figures, "seconds": round(clock.step_seconds(), 4),
                                  **state.notes})
            state.notes = {}
        if state.step % int(self.train["log_every"]) and state.step != state.stop:
            return
        numeric = {k: float(np.mean(v)) for k, v in clock.window.items() if isinstance(v[0], (int, float))}
        means = all_reduce_mean(numeric, state.device)
        elapsed = time.perf_counter() - clock.began
        entry = {"step": state.step, "lr": state.optimizer.param_groups[-1]["lr"], **means,
                 "time_s": round(elapsed, 2), "images_per_s": round(clock.samples / max(elapsed, 1e-9), 2)}
        entry["seconds"] = state.timer.take(state.step - clock.last_log(state))
        clock.logged = state.step
        clock.window = {}
        if self.history == "log":
            state.history.append({**entry, **state.notes})
            state.notes = {}
        log.info("step %d/%d %s; seconds per step: %s", state.step, state.total,
                 " ".join(f"{k}={v:.4g}" for k, v in entry.items() if k not in ("step", "seconds")),
                 " ".join(f"{k}={v:.2f}" for k, v in entry["seconds"].items()))

    def _checkpoint(self, state: TrainState) -> None:
        every = int(self.train["checkpoint_every"])
        if self.store and (state.step % every == 0 or state.step == state.stop or state.checkpoint_due):
            self.store.save(state.step, {"model": state.model.state_dict(), "optimizer": state.optimizer.state_dict(),
                                         "rng": rng_state(), "history": state.history, "position": state.position})
        state.checkpoint_due = False


class _Clock:
    """Counters of one run: samples, the window of figures since the last log line, step times."""

    def __init__(self):
        self.began = self.step_began = time.perf_counter()
        self.samples = 0
        self.window: dict[str, list] = {}
        self.logged: int | None = None

    def step_seconds(self) -> float:
        now = time.perf_counter()
        seconds, self.step_began = now - self.step_began, now
        return seconds

    def last_log(self, state: TrainState) -> int:
        """The step of the previous log line (a resumed run: its first step)."""
        return state.start if self.logged is None else self.logged
