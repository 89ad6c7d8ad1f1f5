"""Training diagnostics of the joint model: the figures that show a task being starved or a head dying.

Per step (averaged over each log window):

- ``gnorm_<task>``: norm of the task's (weighted) gradient on the shared backbone + pyramid, as
  back-propagated (before ``task_balance`` rescales it);
- ``share_<task>``: the task's share of the summed shared gradient (after ``task_balance``), ``<g_task, G> / |G|^2`` (the
  shares add up to 1; a task near 0 barely moves the features it depends on, one above 1 is being
  cancelled by the others);
- ``<head>_alive``: fraction of a classification-style head's hidden units that are non-zero for
  some image of the batch (dead ReLUs give no gradient back, so a head at ~0 has stopped learning;
  not recorded for a head without a hidden layer);
- ``<head>_spread``: mean over the classes present in the batch of the standard deviation of their
  logits across the batch (0 = the head says the same for every image);
- ``det_box_zero``: the largest, over the four box sides, fraction of detection locations that
  predict a zero distance on that side (1 = a regression output has died: every box stops at its
  location's centre on that side; see ``det_box_activation``).

Attached to the engine's hooks (per-task gradient, per step); costs a few dot products per step.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

# a box side this short (in strides) counts as zero: softplus gets there only below -4.6
ZERO_DISTANCE = 0.01


class Diagnostics:
    """Engine hooks (:class:`trafficfm.engine.Hooks`) that record the figures above; ``counts``: the
    heads' training label counts (the logit spread is taken over the classes that occur)."""

    def __init__(self, model: nn.Module, shared: list[nn.Parameter], counts: dict, log_every: int):
        self.shared, self.log_every = shared, int(log_every)
        self.window: dict[str, list[float]] = {}
        self._grads: dict[str, list[torch.Tensor]] = {}
        self._pooled: dict[str, torch.Tensor] = {}
        self._heads = {"cls": model.cls_head, "refine": model.refine_head}
        self._present = {h: torch.as_tensor(np.flatnonzero(np.asarray(counts[h]) > 0)) for h in self._heads}
        for name, head in self._heads.items():
            if head is not None:
                head.proj.register_forward_hook(self._keep(name))
        model.det_reg.register_forward_hook(self._keep_boxes)

    def attach(self, hooks) -> "Diagnostics":
        hooks.task.append(self.after_task)
        hooks.step.append(self.after_step)
        return self

    def _keep(self, name: str):
        def hook(_module, _inputs, output):
            if torch.is_grad_enabled():  # training forwards only, not validation
                self._pooled[name] = output.detach().float().mean(dim=(2, 3))
        return hook

    def _keep_boxes(self, _module, _inputs, output) -> None:
        if torch.is_grad_enabled():
            reg = output[0].detach()  # (N, locations, 4) distances in strides
            self._pooled["boxes"] = (reg < ZERO_DISTANCE).float().mean(dim=(0, 1)).amax()

    def _add(self, key: str, value) -> None:
        self.window.setdefault(key, []).append(float(value))

    def after_task(self, state, task: str, _grads) -> None:
        """The task's gradient is in ``.grad`` (before the tasks are summed): keep it, and look at
        the head it went through. (Shared parameters a task does not reach count as zeros.)"""
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.shared]
        self._grads[task] = grads  # the next task gets fresh .grad tensors: references suffice
        self._add(f"gnorm_{task}", torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))
        if task == "det" and "boxes" in self._pooled:
            self._add("det_box_zero", self._pooled.pop("boxes"))
        head = {"cls": "cls", "det": "refine"}.get(task)
        pooled = self._pooled.pop(head, None) if head else None
        if pooled is not None:
            if not isinstance(self._heads[head].proj, nn.Identity):  # a linear head has no units to die
                self._add(f"{head}_alive", (pooled > 0).any(0).float().mean())
            fc = self._heads[head].fc
            with torch.no_grad():
                logits = fc(pooled.to(fc.weight.dtype))[:, self._present[head].to(pooled.device)]
            self._add(f"{head}_spread", logits.std(0).mean() if logits.shape[0] > 1 else 0.0)

    def after_step(self, state, _figures) -> None:
        """Each task's share of the summed shared gradient; at log steps, the window means go into
        the history entry (``diag``) and the log."""
        if self._grads:
            total = [sum(gs) for gs in zip(*self._grads.values())]
            denom = sum(float((t * t).sum()) for t in total) or 1.0
            for task, grads in self._grads.items():
                self._add(f"share_{task}", sum(float((g * t).sum()) for g, t in zip(grads, total)) / denom)
            self._grads = {}
        if state.step % self.log_every == 0 or state.step == state.stop:
            summary = {k: round(float(np.mean(v)), 4) for k, v in self.window.items()}
            self.window = {}
            state.note(diag=summary)
            log.info("diagnostics at step %d: %s", state.step,
                     " ".join(f"{k}={v:.3g}" for k, v in sorted(summary.items())))


def plot_history(history: list[dict], path) -> None:
    """The training curve of the report: losses, learning rate, validation metrics and warnings
    (top row); per-task gradient norms and update shares on the shared backbone, the heads' live
    units and logit spread, per-class validation accuracy at the validation points (bottom row)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .. import atomic

    train = [h for h in history if "lr" in h]
    evals = [h for h in history if "val" in h]
    fig, axes = plt.subplots(2, 4, figsize=(20, 8))
    skip = ("step", "lr", "time_s", "images_per_s", "seconds", "diag", "kept_step", "warnings")
    _series(axes[0, 0], train, sorted({k for h in train for k in h if k not in skip}), lambda h: h,
            "training loss per task", log=True)
    _series(axes[0, 1], train, ["lr"], lambda h: h, "learning rate (head groups)")
    _validation(axes[0, 2], axes[1, 3], evals)
    _warnings(axes[0, 3], next((h["warnings"] for h in reversed(history) if "warnings" in h), []))
    diag = lambda h: h.get("diag", {})  # noqa: E731
    _series(axes[1, 0], train, ["gnorm_cls", "gnorm_det", "gnorm_seg"], diag,
            "task gradient norm on the shared backbone", log=True)
    _series(axes[1, 1], train, ["share_cls", "share_det", "share_seg"], diag, "share of the shared update per task")
    _series(axes[1, 2], train, ["cls_alive", "refine_alive", "cls_spread", "refine_spread", "det_box_zero"], diag,
            "heads: live units, logit spread, zero box sides")
    fig.tight_layout()
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def _series(ax, entries: list[dict], keys, source, title: str, log: bool = False) -> None:
    for k in keys:
        pts = [(h["step"], source(h)[k]) for h in entries if k in source(h)]
        if pts:
            ax.plot(*zip(*pts), label=k)
    if log and ax.lines:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel("step")
    if len(ax.lines) > 1:
        ax.legend(fontsize=7)


def _validation(ax, ax_classes, evals: list[dict]) -> None:
    """Metrics of the validation points, and every class's accuracy at them."""
    for k in ("top1", "map50", "miou", "score"):
        ax.plot([h["step"] for h in evals], [h["val"][k] for h in evals], marker="o", label=k)
    ax.set_ylim(0, 1)
    ax.set_title("validation (subset) metrics")
    ax.set_xlabel("step")
    if evals:
        ax.legend(fontsize=7)
    names = sorted({n for h in evals for n in h.get("cls_accuracy", {})}, key=lambda n: (len(n), n))
    for n in names:
        ax_classes.plot([h["step"] for h in evals], [h.get("cls_accuracy", {}).get(n, float("nan")) for h in evals],
                        marker=".", lw=0.8, alpha=0.7)
    ax_classes.set_ylim(-0.02, 1.02)
    ax_classes.set_title(f"validation accuracy per class ({len(names)} classes)")
    ax_classes.set_xlabel("step")


def _warnings(ax, warnings: list[str]) -> None:
    ax.axis("off")
    text = "\n\n".join(warnings) if warnings else "no warnings"
    ax.text(0, 1, "Warnings\n\n" + "\n".join(_wrap(text, 60)), va="top", fontsize=8,
            color="firebrick" if warnings else "black")


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return [line for para in text.split("\n") for line in (textwrap.wrap(para, width) or [""])]
