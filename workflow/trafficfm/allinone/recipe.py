"""The parts of the AllInOne recipe that adapt to the data: the schedule's length from epochs per
task, the best checkpoint by validation score, and the warnings a user needs to trust one run
(a task still improving at the last step, a class at 0 % on validation).

:class:`ValidationPoints` plugs into the engine's evaluation callback and hooks.
"""

from __future__ import annotations

import copy
import logging
import math
from pathlib import Path

import torch

from .. import atomic

log = logging.getLogger(__name__)

METRIC_OF = {"cls": "top1", "det": "map50", "seg": "miou"}
# diagnostics' det_box_zero above this at the last step: a box side has died (healthy runs read 0)
DEAD_BOX_SIDE = 0.5


def train_sizes(manifest: dict, split: str) -> dict[str, int]:
    """Training images per task, from the converted dataset's manifest."""
    c = manifest["counts"]
    return {"cls": int(c["cls"][split]), "det": int(c["det_images"][split]), "seg": int(c["seg"][split])}


def schedule_steps(tcfg: dict, sizes: dict[str, int]) -> int:
    """Optimisation steps: ``steps`` when set, else enough for every task to see its ``epochs``
    (each step draws one batch of every task, so the task needing most steps sets the length)."""
    if tcfg["steps"]:
        return int(tcfg["steps"])
    epochs = tcfg["epochs"]
    need = {t: math.ceil(float(epochs[t]) * sizes[t] / int(tcfg["tasks"][t]["batch_size"])) for t in epochs if sizes[t]}
    if not need:
        raise ValueError("allinone.train: set steps, or epochs for at least one task with training data")
    log.info("schedule from epochs %s over %s training images: steps per task %s", {t: epochs[t] for t in epochs},
             sizes, need)
    return max(need.values())


class BestKeeper:
    """Keeps the weights of the best validation score seen so far (in ``<checkpoints>/best.pt``,
    so a resumed run still knows it), and hands them back at the end."""

    def __init__(self, directory: Path, fingerprint: str):
        self.path = Path(directory) / "best.pt"
        self.fingerprint = fingerprint
        self.step, self.score = None, -math.inf
        if self.path.exists():
            blob = torch.load(self.path, map_location="cpu", weights_only=False)
            if blob.get("fingerprint") == fingerprint:
                self.step, self.score = blob["step"], blob["score"]
            else:
                self.path.unlink()

    def offer(self, step: int, score: float, model: torch.nn.Module) -> bool:
        if score <= self.score:
            return False
        self.step, self.score = step, float(score)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic.atomic_path(self.path) as tmp:
            torch.save({"fingerprint": self.fingerprint, "step": step, "score": self.score,
                        "model": copy.deepcopy(model.state_dict())}, tmp)
        return True

    def restore(self, model: torch.nn.Module, last_step: int) -> int:
        """Load the best weights into ``model`` (when they are not the last ones); the step they are from."""
        if self.step is None or self.step == last_step:
            return last_step
        model.load_state_dict(torch.load(self.path, map_location="cpu", weights_only=False)["model"])
        log.info("keeping the weights of step %d (validation score %.4f), not those of step %d",
                 self.step, self.score, last_step)
        return int(self.step)


def warnings_from(history: list[dict], improving: float) -> list[str]:
    """What a user must know before trusting the run, from the validation points in ``history``."""
    evals = [h for h in history if "val" in h]
    out = []
    if len(evals) >= 2:
        prev, last = evals[-2], evals[-1]
        for task, key in METRIC_OF.items():
            gain = last["val"][key] - prev["val"][key]
            if gain > improving:
                out.append(f"{task} still improving at the last step ({key} {prev['val'][key]:.3f} at step "
                           f"{prev['step']} -> {last['val'][key]:.3f} at step {last['step']}): train it longer "
                           f"(allinone.train.epochs.{task})")
    if evals:
        zero = evals[-1].get("zero_classes") or {}
        for task, names in zero.items():
            if names:
                shown = ", ".join(map(str, names[:8])) + (" ..." if len(names) > 8 else "")
                out.append(f"{task}: {len(names)} class(es) at 0 on validation at step {evals[-1]['step']}: {shown}")
    diag = next((h["diag"] for h in reversed(history) if "det_box_zero" in h.get("diag", {})), {})
    if diag.get("det_box_zero", 0.0) > DEAD_BOX_SIDE:
        out.append(f"detection: one box side is zero at {diag['det_box_zero']:.0%} of locations at the last "
                   "step (a dead regression output: boxes stop at their centre on that side); with "
                   "allinone.model.det_box_activation: relu, train again with softplus")
    for w in out:
        log.warning("%s", w)
    return out


def zero_classes(tables: dict) -> dict[str, list]:
    """Classes present in the validation subset that the model never gets right (accuracy, AP or
    IoU of 0)."""
    cls = tables["cls"]
    out = {"cls": [str(n) for n, k, a in zip(cls["name"], cls["images"], cls["accuracy"]) if k > 0 and a == 0]}
    det = tables["det"]
    out["det"] = [str(n) for n, g, a in zip(det["name"], det["gt_boxes"], det["ap50"]) if g > 0 and a == 0]
    seg = tables["seg"]
    out["seg"] = [str(n) for n, g, i in zip(seg["name"], seg["gt_pixels"], seg["iou"]) if g > 0 and i == 0]
    return out


def class_accuracy(tables: dict) -> dict[str, float]:
    """Per-class validation accuracy (classes with images), for the history's figures."""
    cls = tables["cls"]
    return {str(n): round(float(a), 4) for n, k, a in zip(cls["name"], cls["images"], cls["accuracy"]) if k > 0}


class ValidationPoints:
    """The engine's evaluation callback and ``evaluate`` hook for the AllInOne training: each
    validation point records per-class accuracy and the classes at 0 in the history, and offers
    its weights to a :class:`BestKeeper` (``keep_best``); :meth:`final` validates the last step,
    :meth:`finish` restores the best weights and settles the warnings. ``peek(state)`` returns
    (metrics, per-class tables) of the validation subset."""

    def __init__(self, peek, checkpoint_dir, fingerprint: str | None, keep_best: bool, is_main: bool):
        self.peek = peek
        self.keeper = BestKeeper(checkpoint_dir, fingerprint) if keep_best and is_main and checkpoint_dir else None
        self._tables: dict | None = None

    def attach(self, hooks) -> "ValidationPoints":
        hooks.evaluate.append(self.after_evaluate)
        return self

    def evaluate(self, state) -> dict:
        metrics, self._tables = self.peek(state)
        return metrics

    def after_evaluate(self, state, metrics: dict) -> None:
        entry = state.history[-1]  # the engine has just appended {"step", "val"}
        if self._tables is not None:
            entry["cls_accuracy"] = class_accuracy(self._tables)
            entry["zero_classes"] = zero_classes(self._tables)
        if self.keeper is not None:
            self.keeper.offer(state.step, metrics["score"], state.model)

    def final(self, state) -> None:
        """Validate the last step (the engine validates only the steps before it)."""
        if any("val" in h and h["step"] == state.total for h in state.history):
            return
        metrics = self.evaluate(state)
        state.history.append({"step": state.total, "val": metrics})
        for hook in state.hooks.evaluate:
            hook(state, metrics)

    def finish(self, state, improving: float) -> dict:
        kept = self.keeper.restore(state.model, state.total) if self.keeper is not None else state.total
        warnings = warnings_from(state.history, improving)
        if state.history:  # on the last entry, so the history stays one entry per log line / validation
            state.history[-1].update(kept_step=kept, warnings=warnings)
        return {"kept_step": kept, "warnings": warnings}
