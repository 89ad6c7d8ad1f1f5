"""Joint training of the AllInOne model: every step one batch per task, one optimizer step.

Per step, for each task: forward, loss x task weight, backward; optionally the task's gradient on the
shared parameters (backbone + pyramid) is clipped to its own norm before the tasks' gradients are
summed. AdamW (no decay on biases and norms), linear warm-up then cosine decay, bf16 autocast on GPU.

Reproducible and resumable: the data stream is a function of (seed, step) alone (see
:mod:`.datasets`); a checkpoint every ``checkpoint_every`` steps holds the model, optimizer,
scheduler and RNG states and the history, under a fingerprint of everything that changes the
result (:mod:`trafficfm.checkpoints`). A rerun with the same fingerprint resumes from the newest
checkpoint that reads back whole; a changed config starts over. Under ``torchrun`` the same code runs DistributedDataParallel, every process taking
its slice of each global batch; the losses are normalised over all processes so the gradient equals
the single-process gradient of the whole batch. Rank 0 alone writes.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader

from .. import atomic
from ..checkpoints import CheckpointStore
from ..data.canonical import Dataset
from .datasets import COLLATE, ClsDataset, DetDataset, SegDataset, StepBatchSampler, seg_class_weights
from ..seeding import rng_state, seed_everything, set_rng_state
from ..distributed import DistInfo, all_reduce_mean, init_distributed
from .evaluate import splits_of, validate
from ..device import autocast, resolve_device
from .model import TASKS, AllInOneModel

log = logging.getLogger(__name__)



def lr_lambda(warmup: int, total: int, min_ratio: float):
    def f(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, total - warmup)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

    return f


def param_groups(model: AllInOneModel, lr: float, weight_decay: float, backbone_scale: float) -> list[dict]:
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        key = (name.startswith("backbone."), p.ndim > 1)
        groups.setdefault(key, []).append(p)
    out = []
    for (is_backbone, decay), params in sorted(groups.items()):
        out.append({
            "params": params,
            "lr": lr * (backbone_scale if is_backbone else 1.0),
            "weight_decay": weight_decay if decay else 0.0,
        })
    return out


def _lap(timing: dict[str, float], part: str, since: float) -> float:
    now = time.perf_counter()
    timing[part] = timing.get(part, 0.0) + now - since
    return now


# ---------------------------------------------------------------------------------------------- plot
def plot_history(history: list[dict], path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [h for h in history if "lr" in h]
    evals = [h for h in history if "val" in h]
    fig, axes = plt.subplots(1, 3 if evals else 2, figsize=(15 if evals else 10, 4))
    ax = axes[0]
    keys = sorted({k for h in train for k in h if k not in ("step", "lr", "time_s", "images_per_s", "seconds")})
    for k in keys:
        ax.plot([h["step"] for h in train if k in h], [h[k] for h in train if k in h], label=k)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title("training loss per task")
    ax.legend(fontsize=8)
    axes[1].plot([h["step"] for h in train], [h["lr"] for h in train])
    axes[1].set_title("learning rate (head groups)")
    axes[1].set_xlabel("step")
    if evals:
        for k in ("top1", "map50", "miou", "score"):
            axes[2].plot([h["step"] for h in evals], [h["val"][k] for h in evals], marker="o", label=k)
        axes[2].set_ylim(0, 1)
        axes[2].set_title("validation (subset) metrics")
        axes[2].set_xlabel("step")
        axes[2].legend(fontsize=8)
    fig.tight_layout()
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


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
            persistent_workers=False, prefetch_factor=2 if workers else None,
            worker_init_fn=_worker_init if workers else None,
        )
    return loaders, datasets


def _no_buffer_sync() -> dict:
    import inspect

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


def train(
    dataset_dir: str | Path,
    model_path: str | Path,
    checkpoint_dir: str | Path,
    cfg,
    curve_path: str | Path | None = None,
    history_path: str | Path | None = None,
    stop_after: int | None = None,
) -> dict:
    """Train (or resume) and write the final weights to ``model_path``.

    ``cfg``: the ``allinone`` settings (:func:`trafficfm.config.load`). ``stop_after`` ends this run
    after that many steps, leaving only checkpoints, as a kill would (for tests and for splitting a
    long training into jobs). Returns a summary dict (steps, seconds, last losses).
    """
    seed = int(cfg["seed"])
    mcfg, tcfg, icfg = cfg["model"].to_dict(), cfg["train"], cfg["inference"]
    wants_cuda = cfg["device"].startswith("cuda") or (cfg["device"] == "auto" and torch.cuda.is_available())
    info = init_distributed("cuda" if wants_cuda else "cpu")
    dev = resolve_device(cfg["device"], info.local_rank)
    data = Dataset.open(dataset_dir)
    splits = splits_of(data)
    num_classes = {
        "cls": len(data.manifest["cls_classes"]),
        "det": len(data.manifest["det_categories"]),
        "seg": len(data.manifest["seg_classes"]),
    }
    # everything that changes the weights; not how often to log, check-point or peek at validation
    no_effect = ("num_workers", "checkpoint_every", "keep_checkpoints", "log_every", "eval_every", "eval_limit")
    store = CheckpointStore(
        checkpoint_dir,
        {"seed": seed, "model": mcfg, "precision": cfg["precision"],
         "train": {k: v for k, v in tcfg.to_dict().items() if k not in no_effect},
         "splits": splits, "manifest": data.manifest},
        keep=int(tcfg["keep_checkpoints"]), writer=info.is_main)
    fp = store.fingerprint
    total = int(tcfg["steps"])
    precision = cfg["precision"]

    seed_everything(seed)
    model = AllInOneModel(mcfg, num_classes).to(dev).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(
        param_groups(model, tcfg["lr"], tcfg["weight_decay"], tcfg["backbone_lr_scale"]), lr=tcfg["lr"],
        eps=float(tcfg["adam_eps"]),
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(int(tcfg["warmup_steps"]), total, float(tcfg["min_lr_ratio"]))
    )
    history: list[dict] = []
    start = 0
    found = store.resume()
    if found is not None:
        model.load_state_dict(found.state["model"])
        optimizer.load_state_dict(found.state["optimizer"])
        scheduler.load_state_dict(found.state["scheduler"])
        set_rng_state(found.state["rng"])
        history = found.state["history"]
        start = found.step
        del found
    if info.enabled:
        dist.barrier()

    net = model
    if info.enabled:
        # every buffer is a constant (frozen batch norm), so nothing to broadcast during training
        net = DDP(model, device_ids=[dev.index] if dev.type == "cuda" else None, find_unused_parameters=True,
                  **_no_buffer_sync())
    stop = total if stop_after is None else min(total, start + int(stop_after))
    loaders, datasets = build_loaders(data, splits["train"], tcfg, seed, start, stop, info, bool(mcfg["det_refine"]))
    weights = seg_class_weights(datasets["seg"], num_classes["seg"], float(tcfg["tasks"]["seg"]["class_weight_power"]))
    model.seg_class_weights.copy_(torch.from_numpy(weights))
    log.info("segmentation class weights: %s", np.round(weights, 2).tolist())
    iters = {t: iter(loaders[t]) for t in TASKS}
    params = [p for p in model.parameters() if p.requires_grad]
    shared = {id(p) for p in model.shared_parameters()}
    shared_idx = [i for i, p in enumerate(params) if id(p) in shared]
    tasks_cfg = tcfg["tasks"]
    model.train()
    t_start = time.perf_counter()
    window: dict[str, list[float]] = {}
    timing: dict[str, float] = {}  # seconds per part of the step since the last log line (where time goes)
    images_seen = 0
    log.info("training steps %d..%d of %d on %s (world %d); fingerprint %s", start, stop, total, dev,
             info.world_size, fp)
    for step in range(start, stop):
        tick = time.perf_counter()
        batches = {t: _to_device(next(iters[t]), dev) for t in TASKS}
        accum: list[torch.Tensor | None] = [None] * len(params)
        tick = _lap(timing, "data", tick)
        for task in TASKS:
            images, targets = batches[task]
            with autocast(dev, precision):
                losses = net(task, images, targets)
            loss = sum(losses.values()) * float(tasks_cfg[task]["loss_weight"])
            for p in params:
                p.grad = None
            loss.backward()
            clip = tasks_cfg[task]["grad_clip"]
            if clip:
                torch.nn.utils.clip_grad_norm_([params[i].grad for i in shared_idx if params[i].grad is not None],
                                               float(clip))
            for i, p in enumerate(params):
                if p.grad is not None:
                    accum[i] = p.grad.clone() if accum[i] is None else accum[i].add_(p.grad)
            for k, v in losses.items():
                window.setdefault(k, []).append(float(v.detach()))
            images_seen += images.shape[0] * info.world_size
            tick = _lap(timing, task, tick)
        for p, g in zip(params, accum):
            p.grad = g
        if tcfg["grad_clip"]:
            torch.nn.utils.clip_grad_norm_(params, float(tcfg["grad_clip"]))
        optimizer.step()
        scheduler.step()
        _lap(timing, "update", tick)
        done = step + 1
        if done % int(tcfg["log_every"]) == 0 or done == stop:
            means = all_reduce_mean({k: float(np.mean(v)) for k, v in window.items()}, dev)
            elapsed = time.perf_counter() - t_start
            entry = {"step": done, "lr": optimizer.param_groups[-1]["lr"], **means,
                     "time_s": round(elapsed, 2), "images_per_s": round(images_seen / max(elapsed, 1e-9), 2)}
            since = max([start] + [h["step"] for h in history if "lr" in h])  # resumed runs: from start
            steps_in_window = done - since
            entry["seconds"] = {k: round(v / max(steps_in_window, 1), 3) for k, v in timing.items()}
            history.append(entry)
            window, timing = {}, {}
            log.info("step %d/%d %s; seconds per step: %s", done, total,
                     " ".join(f"{k}={v:.4g}" for k, v in entry.items() if k not in ("step", "seconds")),
                     " ".join(f"{k}={v:.2f}" for k, v in entry["seconds"].items()))
        if tcfg["eval_every"] and done % int(tcfg["eval_every"]) == 0 and done < total and info.is_main:
            model.eval()
            metrics, _ = validate(model, {"input": {"cls_size": tasks_cfg["cls"]["size"]},
                                          "class_names": _class_names(data)}, data, splits["val"], dev, icfg,
                                  limit=int(tcfg["eval_limit"]), precision=precision)
            history.append({"step": done, "val": metrics})
            model.train()
        if done % int(tcfg["checkpoint_every"]) == 0 or done == stop:
            store.save(done, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                              "scheduler": scheduler.state_dict(), "rng": rng_state(), "history": history})
    if info.enabled:
        dist.barrier()
    seconds = time.perf_counter() - t_start
    summary = {"start_step": start, "stop_step": stop, "total_steps": total, "seconds": round(seconds, 1),
               "finished": stop == total}
    if stop < total:
        log.info("stopped after step %d of %d (checkpoint kept in %s)", stop, total, store.directory)
        return summary
    if info.is_main:
        final = {
            "model_cfg": {**mcfg, "pretrained": None},
            "num_classes": num_classes,
            "class_names": _class_names(data),
            "input": {"cls_size": int(tasks_cfg["cls"]["size"])},
            "state_dict": model.state_dict(),
            "fingerprint": fp,
            "steps": total,
        }
        with atomic.atomic_path(model_path) as tmp:
            torch.save(final, tmp)
        if history_path:
            atomic.write_json(history_path, history)
        if curve_path:
            plot_history(history, curve_path)
    summary["history_tail"] = history[-1] if history else {}
    return summary


def _class_names(data: Dataset) -> dict:
    return {
        "cls": list(data.manifest["cls_classes"]),
        "det_category_ids": [int(c["id"]) for c in data.manifest["det_categories"]],
        "det": [c["name"] for c in data.manifest["det_categories"]],
        "seg": list(data.manifest["seg_classes"]),
    }


