"""Joint training of the AllInOne model on the shared engine (:mod:`trafficfm.engine`): every step
one batch per task, one optimizer step.

Per step, for each task: forward, loss x task weight, backward; optionally the task's gradient on the
shared parameters (backbone + pyramid) is clipped to its own norm (the engine's ``task`` hooks see
each task's gradient there), and with ``task_balance: equal_norm`` the tasks' shared gradients are
rescaled to norms in proportion to the tasks' loss weights (equal by default) before they are summed. The engine does the rest:
AdamW (heads and backbone at their learning rates, no decay on biases and norms), warm-up then
cosine decay, autocast, checkpoints with resume, DistributedDataParallel, logging, periodic
validation on a subset (``eval_every``).

Reproducible and resumable: the data stream is a function of (seed, step) alone (see
:mod:`.datasets`); a resumed run ends with the same weights as an uninterrupted one. Under
``torchrun`` every process takes its slice of each global batch; the losses are normalised over
all processes so the gradient equals the single-process gradient of the whole batch.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader

from .. import atomic
from ..data.canonical import Dataset
from ..distributed import DistInfo
from ..engine import Hooks, Trainer, TrainState, param_groups, result_settings
from ..seeding import seed_everything
from . import recipe
from .datasets import COLLATE, ClsDataset, DetDataset, SegDataset, StepBatchSampler, label_counts, seg_class_weights
from .diagnostics import Diagnostics, plot_history
from .evaluate import splits_of, validate
from .model import TASKS, AllInOneModel

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- train
def build_loaders(data: Dataset, split: str, tcfg, seed: int, start: int, stop: int, info: DistInfo,
                  mcfg_refine: bool):
    tasks = tcfg["tasks"]
    datasets = {
        "cls": ClsDataset(data, split, tasks["cls"]["size"], True, tasks["cls"]["aug"]),
        "det": DetDataset(data, split, tasks["det"]["crop"], True, tasks["det"]["aug"],
                          refine_patches=tasks["det"]["refine_patches"] if mcfg_refine else 0),
        "seg": SegDataset(data, split, tasks["seg"]["crop"], True, tasks["seg"]["aug"]),
    }
    loaders = {}
    workers = int(tcfg["num_workers"])
    for task, ds in datasets.items():
        sampler = StepBatchSampler(len(ds), int(tasks[task]["batch_size"]), seed, task, start, stop,
                                   info.rank, info.world_size)
        loaders[task] = DataLoader(
            ds, batch_sampler=sampler, collate_fn=COLLATE[task], num_workers=workers,
            persistent_workers=False, prefetch_factor=2 if workers else None, pin_memory=torch.cuda.is_available(),
            worker_init_fn=_worker_init if workers else None,
        )
    return loaders, datasets


def _no_buffer_sync() -> dict:
    """DDP without buffer broadcasts: every buffer is a constant (frozen batch norm)."""
    params = inspect.signature(DDP.__init__).parameters
    return {"forward_sync_buffers": False} if "forward_sync_buffers" in params else {"broadcast_buffers": False}


def _worker_init(_):
    import cv2

    cv2.setNumThreads(1)


def _to_device(batch, device):
    images, targets = batch
    images = images.to(device, non_blocking=True)
    if isinstance(targets, list):
        targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
    else:
        targets = targets.to(device, non_blocking=True)
    return images, targets


def train(dataset_dir: str | Path, model_path: str | Path, checkpoint_dir: str | Path, cfg,
          curve_path: str | Path | None = None, history_path: str | Path | None = None,
          stop_after: int | None = None, hooks: Hooks | None = None) -> dict:
    """Train (or resume) with the ``allinone`` settings ``cfg`` and write the final weights to
    ``model_path``. ``stop_after`` ends this run after that many steps, leaving only checkpoints,
    as a kill would. Returns a summary (steps, seconds, the last history entry)."""
    data = Dataset.open(dataset_dir)
    splits = splits_of(data)
    num_classes = {"cls": len(data.manifest["cls_classes"]), "det": len(data.manifest["det_categories"]),
                   "seg": len(data.manifest["seg_classes"])}
    tcfg = cfg["train"]
    # the validation points choose the kept weights, so with keep_best they change the result
    selection = {k: tcfg[k] for k in ("keep_best", "eval_every", "eval_limit")} if tcfg["keep_best"] else {}
    trainer = Trainer(tcfg, device=cfg["device"], precision=cfg["precision"], checkpoint_dir=checkpoint_dir,
                      settings=result_settings(tcfg, seed=cfg["seed"], model=cfg["model"], precision=cfg["precision"],
                                               # not where the data lies: a moved project still resumes
                                               splits=splits, manifest={k: v for k, v in data.manifest.items()
                                                                        if k != "root"},
                                               selection=selection))
    seed_everything(int(cfg["seed"]))
    model = AllInOneModel(cfg["model"], num_classes).to(trainer.device).to(memory_format=torch.channels_last)
    groups = optimizer_groups(model, tcfg)
    total = recipe.schedule_steps(tcfg, recipe.train_sizes(data.manifest, splits["train"]))
    hooks = hooks or Hooks()
    state = trainer.prepare(model, groups, total, stop_after=stop_after, hooks=hooks,
                            wrap=(model, {"find_unused_parameters": True, **_no_buffer_sync()}))
    step = JointStep(state, data, splits["train"], cfg)
    Diagnostics(model, step.shared_params(), step.label_counts, int(tcfg["log_every"])).attach(hooks)
    points = recipe.ValidationPoints(lambda s: _peek(s, data, splits["val"], cfg), checkpoint_dir,
                                     trainer.fingerprint, bool(tcfg["keep_best"]), state.dist.is_main)
    points.attach(hooks)
    started = state.step
    finished = trainer.run(state, step, evaluate=points.evaluate, eval_every=int(tcfg["eval_every"]))
    summary = {"start_step": started, "stop_step": state.stop, "total_steps": state.total, "finished": finished}
    if not finished:
        log.info("stopped after step %d of %d (checkpoints kept in %s)", state.stop, state.total, checkpoint_dir)
    elif state.dist.is_main:
        if tcfg["eval_every"]:
            points.final(state)  # the last step is always a validation point
        summary.update(points.finish(state, float(tcfg["improving_delta"])))
        _export(state, cfg, data, num_classes, trainer.fingerprint, model_path, curve_path, history_path,
                summary["kept_step"])
    summary["history_tail"] = state.history[-1] if state.history else {}
    return summary


def optimizer_groups(model: AllInOneModel, tcfg) -> list[dict]:
    """AdamW groups: the heads at ``lr``, the pretrained backbone at ``lr x backbone_lr_scale``."""
    lr = float(tcfg["lr"])
    return param_groups(model, lambda name: "backbone" if name.startswith("backbone.") else "heads",
                        {"heads": lr, "backbone": lr * float(tcfg["backbone_lr_scale"])}, float(tcfg["weight_decay"]))


class JointStep:
    """One optimizer step of the joint training: a batch of every task, each task's loss x weight
    back-propagated on its own (its shared-parameter gradient optionally clipped), the gradients summed."""

    def __init__(self, state: TrainState, data: Dataset, split: str, cfg):
        tcfg = cfg["train"]
        self.tasks, self.balance = tcfg["tasks"], tcfg["task_balance"]
        loaders, datasets = build_loaders(data, split, tcfg, int(cfg["seed"]), state.step, state.stop, state.dist,
                                          bool(cfg["model"]["det_refine"]))
        model = state.model
        weights = seg_class_weights(datasets["seg"], model.num_classes["seg"], float(self.tasks["seg"]["class_weight_power"]))
        model.seg_class_weights.copy_(torch.from_numpy(weights))
        log.info("segmentation class weights: %s", np.round(weights, 2).tolist())
        self.label_counts = label_counts(datasets, model.num_classes)
        if state.step == 0 and tcfg["class_prior"]:
            model.set_class_priors(self.label_counts)
        self.iters = {t: iter(loaders[t]) for t in TASKS}
        self.params = state.trainable()
        shared = {id(p) for p in model.shared_parameters()}
        self.shared = [i for i, p in enumerate(self.params) if id(p) in shared]
        model.train()

    def shared_params(self) -> list[torch.nn.Parameter]:
        return [self.params[i] for i in self.shared]

    def __call__(self, state: TrainState) -> dict:
        batches = {t: _to_device(next(self.iters[t]), state.device) for t in TASKS}
        state.timer.lap("data")
        task_grads: dict[str, list[torch.Tensor | None]] = {}
        figures: dict = {"samples": 0}
        for task in TASKS:
            images, targets = batches[task]
            with state.autocast():
                losses = state.net(task, images, targets)
            loss = sum(losses.values()) * float(self.tasks[task]["loss_weight"])
            for p in self.params:
                p.grad = None
            loss.backward()
            self._task_gradient(state, task)
            task_grads[task] = [p.grad for p in self.params]  # fresh tensors per task: references suffice
            figures.update({k: float(v.detach()) for k, v in losses.items()})
            figures["samples"] += images.shape[0] * state.dist.world_size
            state.timer.lap(task)
        if self.balance == "equal_norm":
            equal_norms(task_grads, self.shared, {t: self.tasks[t]["loss_weight"] for t in task_grads})
        for i, p in enumerate(self.params):
            grads = [g[i] for g in task_grads.values() if g[i] is not None]
            p.grad = grads[0].clone() if grads else None  # the tasks' own tensors stay for the diagnostics
            for g in grads[1:]:
                p.grad.add_(g)
        return figures

    def _task_gradient(self, state: TrainState, task: str) -> None:
        grads = [self.params[i].grad for i in self.shared if self.params[i].grad is not None]
        clip = self.tasks[task]["grad_clip"]
        if clip:
            torch.nn.utils.clip_grad_norm_(grads, float(clip))
        for hook in state.hooks.task:
            hook(state, task, grads)


def equal_norms(task_grads: dict[str, list], shared: list[int], weights: dict[str, float] | None = None) -> None:
    """Rescale each task's gradient on the shared parameters (indices ``shared``), in place, to the
    mean of the tasks' norms times the task's weight over the mean weight: with equal (or no) weights
    every task gets the same say in the shared update, otherwise a say in proportion to its weight."""
    norms = {t: torch.linalg.vector_norm(torch.stack([g[i].norm() for i in shared if g[i] is not None]))
             for t, g in task_grads.items() if any(g[i] is not None for i in shared)}
    if not norms:
        return
    target = torch.stack(list(norms.values())).mean()
    w = {t: float(weights[t]) if weights else 1.0 for t in norms}
    mean_w = sum(w.values()) / len(w)
    if mean_w == 0:  # every loss weighted 0: the gradients are zero already
        return
    for task, norm in norms.items():
        scale = target * (w[task] / mean_w) / norm.clamp_min(1e-12)
        for i in shared:
            if task_grads[task][i] is not None:
                task_grads[task][i].mul_(scale)


def _peek(state: TrainState, data: Dataset, split: str, cfg):
    """Validation on the first ``eval_limit`` images per task, during training: metrics and
    per-class tables."""
    state.model.eval()
    blob = {"input": {"cls_size": cfg["train"]["tasks"]["cls"]["size"]}, "class_names": _class_names(data)}
    out = validate(state.model, blob, data, split, state.device, cfg["inference"],
                   limit=int(cfg["train"]["eval_limit"]), precision=state.precision)
    state.model.train()
    return out


def _export(state: TrainState, cfg, data: Dataset, num_classes: dict, fingerprint: str | None, model_path,
            curve_path, history_path, kept_step: int) -> None:
    """The trained model (weights and the settings that rebuild it), its history and curve."""
    final = {
        "model_cfg": {**cfg["model"].to_dict(), "pretrained": None},
        "num_classes": num_classes,
        "class_names": _class_names(data),
        "input": {"cls_size": int(cfg["train"]["tasks"]["cls"]["size"])},
        "state_dict": state.model.state_dict(),
        "fingerprint": fingerprint,
        "steps": state.total,
        "kept_step": kept_step,
    }
    with atomic.atomic_path(model_path) as tmp:
        torch.save(final, tmp)
    if history_path:
        atomic.write_json(history_path, state.history)
    if curve_path:
        plot_history(state.history, curve_path)


def _class_names(data: Dataset) -> dict:
    return {
        "cls": list(data.manifest["cls_classes"]),
        "det_category_ids": [int(c["id"]) for c in data.manifest["det_categories"]],
        "det": [c["name"] for c in data.manifest["det_categories"]],
        "seg": list(data.manifest["seg_classes"]),
    }


