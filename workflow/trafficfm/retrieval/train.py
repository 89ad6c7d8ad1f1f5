"""Fine-tuning: AdamW, linear warm-up then cosine decay, gradient accumulation, bf16 autocast on
GPU, seeded, resumable.

Runs single-process on CPU and under ``torchrun`` on several GPUs with the same code
(DistributedDataParallel; batches are split across ranks by the sampler and the loss gathers
features next to itself; rank 0 alone writes).

Checkpoints go to ``<checkpoint_dir>`` (:mod:`trafficfm.checkpoints`), a folder the Snakemake rule
does not declare as output, so a failed or interrupted job resumes from there when run again. The
fingerprint hashes every result-changing setting and the training table, so a changed config
starts afresh instead of resuming a stale run. A resumed run reproduces an uninterrupted one:
the checkpoint holds the model, optimizer, schedule, position in the epoch and every RNG state,
and batch order and augmentation are functions of (seed, epoch, sample).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch

from .. import atomic
from ..checkpoints import CheckpointStore, file_digest
from ..device import amp_dtype, autocast, resolve_device
from ..distributed import init_distributed
from ..seeding import rng_state, seed_everything, set_rng_state
from .data import (
    AttributeGroupBatchSampler,
    PairDataset,
    load_pairs,
    to_model_input,
    train_loader,
)
from .loss import MultiPositiveLoss
from .model import build_model, save_model, trainable_summary
from .relevance import AttributeCodec

log = logging.getLogger(__name__)

# Keys that do not change the result (excluded from the checkpoint fingerprint).
NON_RESULT_KEYS = ("checkpoint_every", "keep_checkpoints", "log_every", "cache_max_mb")
HEAD_PARAMETERS = ("visual.head", "text.proj", "text_projection", "visual.proj", "logit_scale", "logit_bias")
MAX_LOGIT_SCALE = math.log(100.0)


# ----------------------------------------------------------------------------------- optimisation
def parameter_groups(model: torch.nn.Module, cfg: dict) -> list[dict]:
    """Backbone at ``lr``, projections and logit scale at ``head_lr``; no decay on 1-d tensors."""
    groups: dict[tuple[bool, bool], list] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        head = any(key in name for key in HEAD_PARAMETERS)
        decay = param.ndim >= 2 and "logit_" not in name
        groups.setdefault((head, decay), []).append(param)
    out = []
    for (head, decay), params in sorted(groups.items()):
        lr = cfg["head_lr"] if head else cfg["lr"]
        out.append({"params": params, "lr": lr, "base_lr": lr, "weight_decay": cfg["weight_decay"] if decay else 0.0,
                    "name": f"{'head' if head else 'backbone'}{'' if decay else '_no_decay'}"})
    return out


def lr_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine from 1 to ``min_ratio`` at ``total``."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor


# ------------------------------------------------------------------------------------ checkpoints
def checkpoint_settings(model_cfg, train_cfg, table_path: Path) -> dict:
    """What the fingerprint covers: every result-changing setting and the training table's bytes."""
    return {"model": model_cfg.to_dict(),
            "train": {k: v for k, v in train_cfg.to_dict().items() if k not in NON_RESULT_KEYS},
            "table_sha256": file_digest(table_path)}


# ------------------------------------------------------------------------------------------ train
class _Forward(torch.nn.Module):
    """forward(images, captions) -> features, so DDP sees one forward call per step."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images, captions, keys=None):
        return self.model.encode_image(images, keys), self.model.encode_text(captions)


def finetune(
    dataset_dir: str | Path,
    model_out: str | Path,
    settings,
    checkpoint_dir: str | Path | None,
    summary_out: str | Path | None,
    split: str,
    workers: int = 0,
    stop_after_steps: int | None = None,
) -> dict:
    """Fine-tune on ``<dataset_dir>/<split>.csv`` with the ``retrieval`` settings; write the model to
    ``model_out``. ``workers``: data-loading processes (a function of the rule's threads).

    ``stop_after_steps`` interrupts the run after that many optimizer steps (after writing the
    checkpoint), as a crash would; it exists for the resume test and writes no model.
    """
    model_cfg, cfg = settings["model"], settings["train"]
    wants_cuda = settings["device"].startswith("cuda") or (settings["device"] == "auto" and torch.cuda.is_available())
    info = init_distributed("cuda" if wants_cuda else "cpu")
    rank, local_rank, world = info.rank, info.local_rank, info.world_size
    device = resolve_device(settings["device"], local_rank)
    precision = cfg["precision"]

    frame = load_pairs(dataset_dir, split)
    if frame.empty:
        raise ValueError(f"{dataset_dir}/{split}.csv has no pairs")
    codec = AttributeCodec()
    attribute_ids = codec.encode(frame["attribute"])

    seed_everything(int(cfg["seed"]))
    model = build_model(model_cfg, device)
    log.info("model %s: %s; device %s, autocast %s", model_cfg["arch"], trainable_summary(model), device,
             amp_dtype(precision, device))

    dataset = PairDataset(frame, attribute_ids, model.image_size, int(cfg["seed"]), cfg["augment"])
    sampler = AttributeGroupBatchSampler(attribute_ids, int(cfg["batch_size"]), int(cfg["per_attribute"]),
                                         int(cfg["seed"]), True, rank, world)
    batches_per_epoch = len(sampler.epoch_batches(0))
    accum = max(1, int(cfg["accum_steps"]))
    steps_per_epoch = max(1, batches_per_epoch // accum)
    total_steps = steps_per_epoch * int(cfg["epochs"])
    if cfg["max_steps"]:
        total_steps = min(total_steps, int(cfg["max_steps"]))
    loss_fn = MultiPositiveLoss(codec.table(), float(cfg["label_smoothing"])).to(device)
    optimizer = torch.optim.AdamW(parameter_groups(model, cfg), betas=(0.9, 0.98), eps=1e-6)

    forward = _Forward(model)
    if world > 1:
        forward = torch.nn.parallel.DistributedDataParallel(
            forward, device_ids=[local_rank] if device.type == "cuda" else None)

    position = {"epoch": 0, "batch": 0, "step": 0}
    history: list[dict] = []
    store = None
    if checkpoint_dir:
        store = CheckpointStore(checkpoint_dir, checkpoint_settings(model_cfg, cfg, Path(dataset_dir) / f"{split}.csv"),
                                keep=int(cfg["keep_checkpoints"]), writer=rank == 0)
        found = store.resume()
        if found is not None:
            model.load_state_dict(found.state["model"])
            optimizer.load_state_dict(found.state["optimizer"])
            set_rng_state(found.state["rng"])
            position, history = found.state["position"], found.state["history"]
            log.info("resumed at %s", position)
    log.info("%d pairs, %d batches of %d per epoch per rank, %d optimizer steps (accumulating %d)",
             len(frame), batches_per_epoch, cfg["batch_size"], total_steps, accum)

    step = position["step"]
    pairs_seen, train_seconds = 0, 0.0
    started = time.perf_counter()
    use_prefix_cache = False
    if cfg["cache_frozen_image"] and step < total_steps:
        if dataset.fresh_every_epoch:
            log.warning("cache_frozen_image ignored: augmentation changes the frozen prefix's input every epoch "
                        "(set augment.views to cache a fixed number of variants)")
        else:
            use_prefix_cache = model.enable_prefix_cache(float(cfg["cache_max_mb"]))
            log.info("frozen-prefix image cache: %s", "on" if use_prefix_cache else "off")
    text_cache_seconds = 0.0
    if model.text_frozen and step < total_steps:
        encoded = model.warm_text_cache(frame["caption"], batch_size=128)
        text_cache_seconds = time.perf_counter() - started
        log.info("frozen text tower: %d distinct captions encoded once in %.1f s", encoded, text_cache_seconds)
    window_pairs, window_start = 0, time.perf_counter()
    step_start = time.perf_counter()
    stop = step >= total_steps
    epoch = position["epoch"]
    while not stop and epoch < int(cfg["epochs"]):
        start_batch = position["batch"] if epoch == position["epoch"] else 0
        dataset.set_epoch(epoch)
        dataset.cached_keys = model.prefix_cached_keys() if use_prefix_cache else frozenset()
        sampler.set_epoch(epoch, start_batch)
        model.train()
        batch_index = start_batch
        micro = 0
        for images, captions, ids, keys in train_loader(dataset, sampler, int(workers)):
            if images.numel():  # (empty when every image of the batch comes from the prefix cache)
                images = to_model_input(images, model.normalise.mean, model.normalise.std, device)
            ids = ids.to(device)
            with autocast(device, precision):
                image_features, text_features = forward(images, captions, keys if use_prefix_cache else None)
            loss = loss_fn(image_features.float(), text_features.float(), ids, model.logit_scale)
            (loss / accum).backward()
            batch_index += 1
            micro += 1
            pairs_seen += len(captions) * world
            window_pairs += len(captions) * world
            if micro % accum:
                continue
            set_lr(optimizer, lr_factor(step, total_steps, int(cfg["warmup_steps"]), float(cfg["min_lr_ratio"])))
            if cfg["grad_clip"]:
                torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad],
                                               float(cfg["grad_clip"]))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
            step += 1
            now = time.perf_counter()
            record = {"step": step, "epoch": epoch, "loss": float(loss.detach()),
                      "logit_scale": float(model.logit_scale.detach().exp()),
                      "seconds": round(now - step_start, 4), "pairs": len(captions) * world * accum}
            step_start = now
            history.append(record)
            if step % int(cfg["log_every"]) == 0 or step == total_steps:
                elapsed = time.perf_counter() - window_start
                log.info("step %d/%d epoch %d loss %.4f scale %.1f lr %.2e %.1f pairs/s", step, total_steps, epoch,
                         record["loss"], record["logit_scale"], optimizer.param_groups[0]["lr"],
                         window_pairs / max(elapsed, 1e-9))
                window_pairs, window_start = 0, time.perf_counter()
            position = {"epoch": epoch, "batch": batch_index, "step": step}
            last_of_epoch = batch_index >= batches_per_epoch - (batches_per_epoch % accum)
            if last_of_epoch:
                position = {"epoch": epoch + 1, "batch": 0, "step": step}
            interrupt = stop_after_steps is not None and step >= stop_after_steps
            if store and (interrupt or step % int(cfg["checkpoint_every"]) == 0 or last_of_epoch
                          or step >= total_steps):
                store.save(step, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                  "position": position, "rng": rng_state(), "history": history})
            if interrupt:
                return {"interrupted_at_step": step}
            if step >= total_steps:
                stop = True
                break
            if last_of_epoch:
                break
        epoch += 1
    train_seconds = time.perf_counter() - started

    summary = {
        "arch": model_cfg["arch"],
        "steps": step,
        "epochs": int(cfg["epochs"]),
        "pairs": len(frame),
        "pairs_seen_this_run": pairs_seen,
        "train_seconds_this_run": round(train_seconds, 2),
        "pairs_per_second": round(pairs_seen / train_seconds, 2) if train_seconds and pairs_seen else None,
        "pairs_per_second_by_epoch": _rate_by_epoch(history),
        "text_cache_seconds": round(text_cache_seconds, 2),
        "prefix_cache": use_prefix_cache,
        "image_size": model.image_size,
        "world_size": world,
        "device": str(device),
        "final_loss": history[-1]["loss"] if history else None,
        "trainable": trainable_summary(model),
        "history": history,
    }
    if rank == 0:
        save_model(model_out, model, model_cfg.to_dict(), summary)
        if summary_out:
            atomic.write_json(summary_out, summary)
    log.info("fine-tuning done: %d steps, %.1f pairs/s", step, summary["pairs_per_second"] or 0.0)
    return summary


def _rate_by_epoch(history: list[dict]) -> dict:
    """Pairs per second of the optimizer steps of each epoch (steps timed in this run)."""
    rates = {}
    for epoch in sorted({h["epoch"] for h in history if "seconds" in h}):
        steps = [h for h in history if h["epoch"] == epoch and "seconds" in h]
        seconds = sum(h["seconds"] for h in steps)
        rates[str(epoch)] = round(sum(h["pairs"] for h in steps) / seconds, 2) if seconds else None
    return rates
