"""Fine-tuning of the retrieval model on the shared engine (:mod:`trafficfm.engine`): the
multi-positive contrastive loss over batches that group images of one attribute text, gradient
accumulation, the frozen-tower caches. The engine does the rest: AdamW (tower layers at ``lr``,
projections and logit scale at ``head_lr``), warm-up then cosine decay, autocast, checkpoints with
resume, DistributedDataParallel (batches split across ranks by the sampler; the loss gathers
features next to itself), logging; rank 0 alone writes.

A resumed run reproduces an uninterrupted one: the checkpoint holds the model, optimizer, position
in the epoch and every RNG state, and batch order and augmentation are functions of (seed, epoch,
sample). The fingerprint covers every result-changing setting and the training table's bytes.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch

from .. import atomic
from ..checkpoints import file_digest
from ..device import amp_dtype
from ..engine import Hooks, Trainer, TrainState, param_groups, result_settings
from ..seeding import seed_everything
from .data import AttributeGroupBatchSampler, PairDataset, load_pairs, to_model_input, train_loader
from .loss import MultiPositiveLoss
from .model import build_model, save_model, trainable_summary
from .relevance import AttributeCodec

log = logging.getLogger(__name__)

HEAD_PARAMETERS = ("visual.head", "text.proj", "text_projection", "visual.proj", "logit_scale", "logit_bias")
MAX_LOGIT_SCALE = math.log(100.0)


class _Forward(torch.nn.Module):
    """forward(images, captions) -> features, so DDP sees one forward call per step."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images, captions, keys=None):
        return self.model.encode_image(images, keys), self.model.encode_text(captions)


def finetune(dataset_dir: str | Path, model_out: str | Path, settings, checkpoint_dir: str | Path | None,
             summary_out: str | Path | None, split: str, workers: int = 0, stop_after_steps: int | None = None,
             hooks: Hooks | None = None) -> dict:
    """Fine-tune on ``<dataset_dir>/<split>.csv`` with the ``retrieval`` settings; write the model to
    ``model_out``. ``workers``: data-loading processes (a function of the rule's threads).
    ``stop_after_steps`` ends this run after that many optimizer steps (checkpoints only), as a
    crash would."""
    cfg = settings["train"]
    frame = load_pairs(dataset_dir, split)
    if frame.empty:
        raise ValueError(f"{dataset_dir}/{split}.csv has no pairs")
    trainer = Trainer(cfg, device=settings["device"], precision=cfg["precision"], checkpoint_dir=checkpoint_dir,
                      settings=result_settings(cfg, model=settings["model"],
                                               table_sha256=file_digest(Path(dataset_dir) / f"{split}.csv")),
                      history="step")
    seed_everything(int(cfg["seed"]))
    model = build_model(settings["model"], trainer.device)
    log.info("model %s: %s; device %s, autocast %s", settings["model"]["arch"], trainable_summary(model),
             trainer.device, amp_dtype(cfg["precision"], trainer.device))
    step = ContrastiveStep(model, frame, cfg, trainer, workers)
    groups = param_groups(model, lambda name: "head" if any(k in name for k in HEAD_PARAMETERS) else "backbone",
                          {"backbone": float(cfg["lr"]), "head": float(cfg["head_lr"])}, float(cfg["weight_decay"]),
                          decays=lambda name, p: p.ndim >= 2 and "logit_" not in name)
    state = trainer.prepare(model, groups, step.total_steps, stop_after=stop_after_steps, hooks=hooks,
                            wrap=(_Forward(model), {}))
    started = time.perf_counter()
    step.start(state)
    finished = trainer.run(state, step, after_update=_clamp_logit_scale)
    if not finished:
        return {"interrupted_at_step": state.step}
    summary = _summary(state, step, settings, len(frame), time.perf_counter() - started)
    if state.dist.is_main:
        save_model(model_out, model, settings["model"].to_dict(), summary)
        if summary_out:
            atomic.write_json(summary_out, summary)
    log.info("fine-tuning done: %d steps, %.1f pairs/s", state.step, summary["pairs_per_second"] or 0.0)
    return summary


def _clamp_logit_scale(state: TrainState) -> None:
    with torch.no_grad():
        state.model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
    state.note(logit_scale=float(state.model.logit_scale.detach().exp()))


class ContrastiveStep:
    """One optimizer step: ``accum_steps`` batches (each its own contrastive batch), in the sampler's
    order epoch after epoch from the saved position; the frozen towers' caches filled on the way."""

    def __init__(self, model, frame, cfg, trainer: Trainer, workers: int):
        codec = AttributeCodec()
        attribute_ids = codec.encode(frame["attribute"])
        self.model, self.frame, self.cfg, self.workers = model, frame, cfg, int(workers)
        self.dataset = PairDataset(frame, attribute_ids, model.image_size, int(cfg["seed"]), cfg["augment"])
        self.sampler = AttributeGroupBatchSampler(attribute_ids, int(cfg["batch_size"]), int(cfg["per_attribute"]),
                                                  int(cfg["seed"]), True, trainer.dist.rank, trainer.dist.world_size)
        self.batches_per_epoch = len(self.sampler.epoch_batches(0))
        self.accum = max(1, int(cfg["accum_steps"]))
        self.total_steps = max(1, self.batches_per_epoch // self.accum) * int(cfg["epochs"])
        if cfg["max_steps"]:
            self.total_steps = min(self.total_steps, int(cfg["max_steps"]))
        self.loss_fn = MultiPositiveLoss(codec.table(), float(cfg["label_smoothing"])).to(trainer.device)
        self.use_cache, self.text_cache_seconds, self.pairs_seen = False, 0.0, 0
        self.epoch, self.batch, self.batches = 0, 0, None
        log.info("%d pairs, %d batches of %d per epoch per rank, %d optimizer steps (accumulating %d)",
                 len(frame), self.batches_per_epoch, cfg["batch_size"], self.total_steps, self.accum)

    def start(self, state: TrainState) -> None:
        """Take up the saved position and fill the caches of the frozen parts (when training remains)."""
        self.epoch, self.batch = (state.position["epoch"], state.position["batch"]) if state.position else (0, 0)
        if state.step >= state.total:
            return
        if self.cfg["cache_frozen_image"]:
            if self.dataset.fresh_every_epoch:
                log.warning("cache_frozen_image ignored: augmentation changes the frozen prefix's input every epoch "
                            "(set augment.views to cache a fixed number of variants)")
            else:
                self.use_cache = self.model.enable_prefix_cache(float(self.cfg["cache_max_mb"]))
                log.info("frozen-prefix image cache: %s", "on" if self.use_cache else "off")
        if self.model.text_frozen:
            began = time.perf_counter()
            encoded = self.model.warm_text_cache(self.frame["caption"], batch_size=128)
            self.text_cache_seconds = time.perf_counter() - began
            log.info("frozen text tower: %d distinct captions encoded once in %.1f s", encoded, self.text_cache_seconds)

    def __call__(self, state: TrainState) -> dict:
        epoch = self.epoch
        for _ in range(self.accum):
            images, captions, ids, keys = self._next()
            state.timer.lap("data")
            if images.numel():  # (empty when every image of the batch comes from the prefix cache)
                images = to_model_input(images, self.model.normalise.mean, self.model.normalise.std, state.device)
            with state.autocast():
                image_features, text_features = state.net(images, captions, keys if self.use_cache else None)
            loss = self.loss_fn(image_features.float(), text_features.float(), ids.to(state.device),
                                self.model.logit_scale)
            (loss / self.accum).backward()
            state.timer.lap("forward_backward")
        pairs = len(captions) * state.dist.world_size * self.accum
        self.pairs_seen += pairs
        state.position = {"epoch": self.epoch, "batch": self.batch, "step": state.step + 1}
        if self.batch >= self.batches_per_epoch - (self.batches_per_epoch % self.accum):  # the epoch's last step
            self.epoch, self.batch, self.batches = self.epoch + 1, 0, None
            state.position = {"epoch": self.epoch, "batch": 0, "step": state.step + 1}
            state.checkpoint_due = True
        return {"epoch": epoch, "loss": float(loss.detach()), "pairs": pairs, "samples": pairs}

    def _next(self):
        """The next batch; a new epoch starts where the last one ended."""
        while True:
            if self.batches is None:
                self.dataset.set_epoch(self.epoch)
                self.dataset.cached_keys = self.model.prefix_cached_keys() if self.use_cache else frozenset()
                self.sampler.set_epoch(self.epoch, self.batch)
                self.model.train()
                self.batches = iter(train_loader(self.dataset, self.sampler, self.workers))
            try:
                item = next(self.batches)
            except StopIteration:
                self.epoch, self.batch, self.batches = self.epoch + 1, 0, None
                continue
            self.batch += 1
            return item


def _summary(state: TrainState, step: ContrastiveStep, settings, pairs: int, seconds: float) -> dict:
    history = state.history
    return {
        "arch": settings["model"]["arch"],
        "steps": state.step,
        "epochs": int(settings["train"]["epochs"]),
        "pairs": pairs,
        "pairs_seen_this_run": step.pairs_seen,
        "train_seconds_this_run": round(seconds, 2),
        "pairs_per_second": round(step.pairs_seen / seconds, 2) if seconds and step.pairs_seen else None,
        "pairs_per_second_by_epoch": _rate_by_epoch(history),
        "text_cache_seconds": round(step.text_cache_seconds, 2),
        "prefix_cache": step.use_cache,
        "image_size": state.model.image_size,
        "world_size": state.dist.world_size,
        "device": str(state.device),
        "final_loss": history[-1]["loss"] if history else None,
        "trainable": trainable_summary(state.model),
        "history": history,
    }


def _rate_by_epoch(history: list[dict]) -> dict:
    """Pairs per second of the optimizer steps of each epoch (steps timed in this run)."""
    rates = {}
    for epoch in sorted({h["epoch"] for h in history if "seconds" in h}):
        steps = [h for h in history if h["epoch"] == epoch and "seconds" in h]
        seconds = sum(h["seconds"] for h in steps)
        rates[str(epoch)] = round(sum(h["pairs"] for h in steps) / seconds, 2) if seconds else None
    return rates
