"""Validation: mAP@10 (organisers' arithmetic) and Recall@1/5/10, before and after fine-tuning,
overall and per kind, and the re-ranking decision.

Validation queries are derived from the validation label file as the organisers' own
``track2/test.py`` does: **one query per label line** (its caption), whose relevant images are
the validation images matching that line's attribute text under :mod:`.relevance`; the gallery is
every validation image. ``val_queries: caption`` instead keeps one query per distinct
(caption, attribute) pair, which weighs attribute texts with many identical captions less.
Per-kind figures use the queries of that kind against the whole gallery.

Outputs: ``val_metrics.json`` = ``{"map10", "map10_before", "recall@1", "recall@5", "recall@10"}``
(fractions, for the fine-tuned model with the kept re-ranking, if any), and beside it
``val_metrics_per_kind.json`` (the same keys plus query counts for ``overall``, ``vehicle`` and
``pedestrian``, before and after, with and without re-ranking) and ``rerank.json`` (the decision
that :mod:`.predict` applies).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .. import atomic
from ..ensemble import soft
from .data import image_loader, load_pairs, to_model_input
from .metrics import hits_for_ranking, summarise_by_kind
from .model import build_model, load_model
from .rank import choose_rerank, kind_codes, rank, rankings_frame, rerank_candidates
from .relevance import AttributeCodec
from ..seeding import seed_everything
from ..device import resolve_device

log = logging.getLogger(__name__)

@torch.no_grad()
def encode_images(model, paths: Sequence[str], cfg, workers: int = 1) -> torch.Tensor:
    """Unit embeddings of the images, in order, with the ``retrieval.eval`` settings ``cfg``
    (``batch_size``; ``flip``: the normalised mean of each image's embedding and its mirror's, a
    test-time augmentation that costs one more pass per image)."""
    model.eval()
    flip = bool(cfg["flip"])
    out = []
    for images, _ in image_loader(paths, model.image_size, int(cfg["batch_size"]), workers):
        images = to_model_input(images, model.normalise.mean, model.normalise.std, model.device)
        features = model.encode_image(images).float()
        if flip:
            features = F.normalize(features + model.encode_image(images.flip(-1)).float(), dim=-1)
        out.append(features.cpu())
    return torch.cat(out) if out else torch.zeros(0, 1)


@torch.no_grad()
def encode_texts(model, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """Embeddings of every text, in order (each distinct text encoded once; none dropped)."""
    model.eval()
    texts = list(texts)
    unique = sorted(dict.fromkeys(texts), key=len)  # batches of similar length pad little
    chunks = [model.encode_text(unique[i:i + batch_size]).float().cpu() for i in range(0, len(unique), batch_size)]
    table = torch.cat(chunks) if chunks else torch.zeros(0, 1)
    position = {t: i for i, t in enumerate(unique)}
    return table[torch.tensor([position[t] for t in texts], dtype=torch.long)]


def validation_queries(frame: pd.DataFrame, mode: str = "line") -> pd.DataFrame:
    """Queries (``text``, ``attribute``, ``kind``) derived from the validation label lines."""
    queries = frame[["caption", "attribute", "kind"]].rename(columns={"caption": "text"})
    if mode == "caption":
        queries = queries.drop_duplicates(["text", "attribute"])
    elif mode != "line":
        raise ValueError(f"val_queries must be 'line' or 'caption', got {mode!r}")
    return queries.reset_index(drop=True)


def score_model(model, frame: pd.DataFrame, queries: pd.DataFrame, cfg, workers: int, image_features=None):
    """Encode the gallery (unless given) and the queries; returns (image features, text features)."""
    t0 = time.perf_counter()
    if image_features is None:
        image_features = encode_images(model, frame["path"].tolist(), cfg, workers)
    text_features = encode_texts(model, queries["text"].tolist())
    log.info("encoded %d images and %d queries in %.1f s", len(image_features), len(text_features),
             time.perf_counter() - t0)
    return image_features, text_features


def metrics_for(codec: AttributeCodec, queries: pd.DataFrame, frame: pd.DataFrame, top: torch.Tensor) -> dict:
    hits = hits_for_ranking(codec, codec.encode(queries["attribute"]), codec.encode(frame["attribute"]), top)
    return summarise_by_kind(hits, queries["kind"].tolist())


def evaluate(
    dataset_dir: str | Path,
    model_path: str | Path,
    metrics_out: str | Path,
    per_kind_out: str | Path,
    rerank_out: str | Path,
    settings,
    split: str,
    workers: int = 0,
    rankings_out: str | Path | None = None,
    embeddings_out: str | Path | None = None,
) -> dict:
    """Validate the fine-tuned model at ``model_path`` against the model it started from (built
    from the ``retrieval`` settings with the training seed). ``workers``: image-loading processes.

    ``rankings_out``: also write the split's rankings (every label line a query, in line order,
    re-ranked as decided) in the test rankings' form, for the submission stage's local scorer.
    ``embeddings_out``: also write the fine-tuned model's gallery and query (every label line)
    embeddings, the soft predictions an ensemble fuses (:mod:`..ensemble.soft`).
    """
    model_cfg, cfg, seed = settings["model"], settings["eval"], settings["train"]["seed"]
    device = resolve_device(settings["device"])
    frame = load_pairs(dataset_dir, split)
    if frame.empty:
        raise ValueError(f"{dataset_dir}/{split}.csv has no pairs: nothing to validate on")
    lines, scored = _scored_lines(frame, cfg["val_queries"])
    queries = lines[scored].reset_index(drop=True)
    codec = AttributeCodec()
    gallery_kinds = kind_codes(frame["kind"].tolist())
    k, chunk = 10, int(cfg["chunk"])
    log.info("validation: %d queries (%s) against %d images", len(queries), cfg["val_queries"], len(frame))

    def measure(texts, images, method=None):
        top = rank(texts[torch.from_numpy(scored)], images, gallery_kinds, method, k=k, chunk=chunk)
        return metrics_for(codec, queries, frame, top)

    # Before fine-tuning: the initial model (same seed), same eval settings: the gain is the fine-tuning's.
    seed_everything(seed)
    before_model = build_model(model_cfg, device)
    images, texts = score_model(before_model, frame, lines, cfg, workers)
    before = measure(texts, images)
    del before_model

    after_model = load_model(model_path, device)
    images, texts = score_model(after_model, frame, lines, cfg, workers)
    if embeddings_out:
        soft.write_embeddings(embeddings_out, images.numpy(), texts.numpy())
    plain = measure(texts, images)
    candidates = rerank_candidates(cfg["rerank_grid"]) if cfg["rerank"] else [{"name": "none"}]
    decision = choose_rerank(lambda method: measure(texts, images, method)["overall"]["map10"], candidates,
                             float(cfg["rerank_min_gain"]))
    after = measure(texts, images, decision["method"]) if decision["kept"] else plain

    decision["split"] = split
    if rankings_out:
        top = rank(texts, images, gallery_kinds, decision["method"], k=k, chunk=chunk).numpy()
        names = [PurePosixPath(p).name for p in frame["image"]]
        atomic.write_csv(rankings_out, rankings_frame(lines.assign(query=np.arange(len(lines))), names, top))
    return _write_results(before, plain, after, decision, cfg["val_queries"], len(frame),
                          metrics_out, per_kind_out, rerank_out)


def _scored_lines(frame: pd.DataFrame, mode: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Every label line as a query, and which of them are scored (``val_queries``: line = all,
    caption = the first of each distinct (caption, attribute))."""
    lines = validation_queries(frame, "line")
    if mode == "caption":
        return lines, ~lines.duplicated(["text", "attribute"]).to_numpy()
    if mode != "line":
        raise ValueError(f"val_queries must be 'line' or 'caption', got {mode!r}")
    return lines, np.ones(len(lines), dtype=bool)


def _write_results(before: dict, plain: dict, after: dict, decision: dict, mode: str, gallery: int,
                   metrics_out, per_kind_out, rerank_out) -> dict:
    overall = after["overall"]
    metrics = {"map10": overall["map10"], "map10_before": before["overall"]["map10"],
               "recall@1": overall["recall@1"], "recall@5": overall["recall@5"], "recall@10": overall["recall@10"]}
    per_kind = {"queries": mode, "gallery_images": gallery, "rerank": decision["method"], "after": after,
                "after_no_rerank": plain, "before": before}
    atomic.write_json(per_kind_out, per_kind)
    atomic.write_json(rerank_out, decision)
    atomic.write_json(metrics_out, metrics)
    log.info("val mAP@10 %.4f (before %.4f); R@1 %.3f R@5 %.3f R@10 %.3f; re-ranking: %s",
             metrics["map10"], metrics["map10_before"], metrics["recall@1"], metrics["recall@5"],
             metrics["recall@10"], decision["reason"])
    return {"metrics": metrics, "per_kind": per_kind, "rerank": decision}


def as_table(per_kind: dict) -> pd.DataFrame:
    """A flat table of the per-kind file (for reports)."""
    rows = []
    for stage in ("before", "after_no_rerank", "after"):
        for kind, values in per_kind[stage].items():
            rows.append({"stage": stage, "kind": kind, **values})
    return pd.DataFrame(rows)
