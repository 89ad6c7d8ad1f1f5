"""Fusion of AllInOne ensemble members' soft predictions (written by ``predict(..., soft_dir=...)``).

- classification: the members' top-k probabilities are averaged (a class outside a member's top k
  counts 0 there); the label is the most probable class;
- detection: the union of the members' boxes, per image and category, fused by weighted box fusion
  (``wbf``: boxes that overlap by more than ``det_iou`` form a cluster; its box is the
  score-weighted mean, its score the mean score x min(boxes, members) / members) or by per-class
  NMS (``nms``: the best box of each cluster is kept; its score is the mean over members of each
  member's best matching score, 0 for a member without one). Boxes stay in original pixels and
  categories keep their ids: nothing is normalised or remapped;
- segmentation: the members' quantised probabilities are summed as integers, one image at a time,
  and the label is the most probable class.

Fusion is independent of the members' order: boxes are visited in one canonical order (score,
then coordinates), and probabilities are summed exactly (integers, or float64 sums of float16).
The fusion of identical members is the member. ``det_iou`` should be at least the members' own
``det_nms_thresh``, so a member's own boxes (already NMS-separated) never merge with each other.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torchvision.ops import box_iou

from .. import atomic
from . import soft

log = logging.getLogger(__name__)

METHODS = ("wbf", "nms")


# ---------------------------------------------------------------------------------- classification
def fuse_cls(members: list[dict]) -> dict:
    """Average of the members' top-k tables (from :func:`soft.read_cls`); returns the same form with
    the full fused probability table as ``prob_full`` and the label per image as ``label``."""
    first = members[0]
    for m in members[1:]:
        if m["names"] != first["names"] or m["classes"] != first["classes"]:
            raise ValueError("ensemble members classify different images or class sets")
    n, classes = len(first["names"]), first["classes"]
    total = np.zeros((n, classes), dtype=np.float64)  # float64 sums of float16 values are exact
    rows = np.arange(n)[:, None]
    for m in members:
        np.add.at(total, (np.broadcast_to(rows, m["index"].shape), m["index"]), m["prob"].astype(np.float64))
    prob = total / len(members)
    label = prob.argmax(1) if n else np.zeros(0, dtype=np.int64)  # ties: the lower class id
    k = first["index"].shape[1]
    index = np.argsort(-prob, axis=1, kind="stable")[:, :k]
    return {"names": first["names"], "classes": classes, "index": index,
            "prob": np.take_along_axis(prob, index, axis=1), "prob_full": prob, "label": label}


# --------------------------------------------------------------------------------------- detection
def _xyxy(records: list[dict]) -> np.ndarray:
    b = np.asarray([r["bbox"] for r in records], dtype=np.float64).reshape(-1, 4)
    b[:, 2:] += b[:, :2]
    return b


def _canonical_order(boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Best score first; equal scores by coordinates, so the members' order never matters."""
    return np.lexsort((boxes[:, 3], boxes[:, 2], boxes[:, 1], boxes[:, 0], -scores))


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return box_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy()


def _wbf(boxes: np.ndarray, scores: np.ndarray, n_members: int, iou: float) -> tuple[np.ndarray, np.ndarray]:
    order = _canonical_order(boxes, scores)
    fused: list[np.ndarray] = []  # current fused box per cluster
    weighted: list[np.ndarray] = []  # sum of score x box
    sums: list[float] = []  # sum of scores
    counts: list[int] = []
    for i in order:
        b, s = boxes[i], scores[i]
        j = -1
        if fused:
            ious = _iou(b[None], np.stack(fused))[0]
            j = int(ious.argmax())
            if ious[j] <= iou:
                j = -1
        if j < 0:
            fused.append(b.copy())
            weighted.append(b * s)
            sums.append(float(s))
            counts.append(1)
        else:
            weighted[j] = weighted[j] + b * s
            sums[j] += float(s)
            counts[j] += 1
            fused[j] = weighted[j] / sums[j] if sums[j] > 0 else fused[j]
    if not fused:
        return np.zeros((0, 4)), np.zeros(0)
    out_scores = np.asarray([s / c * min(c, n_members) / n_members for s, c in zip(sums, counts)])
    return np.stack(fused), out_scores


def _nms(boxes: np.ndarray, scores: np.ndarray, member: np.ndarray, n_members: int,
         iou: float) -> tuple[np.ndarray, np.ndarray]:
    order = _canonical_order(boxes, scores)
    boxes, scores, member = boxes[order], scores[order], member[order]
    ious = _iou(boxes, boxes)
    alive = np.ones(len(boxes), dtype=bool)
    kept_boxes, kept_scores = [], []
    for i in range(len(boxes)):
        if not alive[i]:
            continue
        cluster = alive & (ious[i] > iou)
        cluster[i] = True
        best = np.zeros(n_members)
        for j in np.nonzero(cluster)[0]:  # each member's best matching score
            best[member[j]] = max(best[member[j]], scores[j])
        kept_boxes.append(boxes[i])
        kept_scores.append(best.sum() / n_members)
        alive &= ~cluster
    if not kept_boxes:
        return np.zeros((0, 4)), np.zeros(0)
    return np.stack(kept_boxes), np.asarray(kept_scores)


def fuse_det(members: list[list[dict]], method: str = "wbf", iou: float = 0.6, max_per_image: int = 100,
             score_thresh: float = 0.0) -> list[dict]:
    """Fused COCO results of the members' COCO results lists (boxes in original pixels)."""
    if method not in METHODS:
        raise ValueError(f"detection fusion {method!r}: expected one of {METHODS}")
    groups: dict[tuple[int, int], list[tuple[int, dict]]] = {}
    for m, records in enumerate(members):
        for r in records:
            groups.setdefault((int(r["image_id"]), int(r["category_id"])), []).append((m, r))
    per_image: dict[int, list[dict]] = {}
    for (image_id, category_id), items in sorted(groups.items()):
        boxes = _xyxy([r for _, r in items])
        scores = np.asarray([r["score"] for _, r in items], dtype=np.float64)
        if method == "wbf":
            fb, fs = _wbf(boxes, scores, len(members), iou)
        else:
            fb, fs = _nms(boxes, scores, np.asarray([m for m, _ in items]), len(members), iou)
        for (x1, y1, x2, y2), s in zip(fb, fs):
            if s <= score_thresh:
                continue
            per_image.setdefault(image_id, []).append({
                "image_id": image_id, "category_id": category_id,
                "bbox": [round(float(x1), 2), round(float(y1), 2), round(float(x2 - x1), 2), round(float(y2 - y1), 2)],
                "score": round(float(s), 5),
            })
    out = []
    for image_id in sorted(per_image):
        recs = sorted(per_image[image_id], key=lambda r: (-r["score"], r["category_id"], r["bbox"]))
        out += recs[:max_per_image]
    return out


# ------------------------------------------------------------------------------------ segmentation
def fuse_seg_maps(probs: list[np.ndarray], with_mean: bool = False):
    """Label map (uint8) of one image from its members' uint8 probability maps; with ``with_mean``,
    also the fused quantised probabilities (uint8)."""
    if len(probs) > 257:
        raise ValueError("more than 257 members overflow the uint16 sum")
    total = probs[0].astype(np.uint16)
    for p in probs[1:]:
        if p.shape != total.shape:
            raise ValueError(f"members' probability maps differ in shape: {p.shape} vs {total.shape}")
        total += p
    label = total.argmax(0).astype(np.uint8)  # ties: the lower class id
    if not with_mean:
        return label
    m = len(probs)
    mean = ((2 * total.astype(np.uint32) + m) // (2 * m)).astype(np.uint8)  # round half up, in integers
    return label, mean


def seg_stems(soft_dir: str | Path) -> list[str]:
    return sorted(p.stem for p in (Path(soft_dir) / "seg").glob("*.npz"))


# ------------------------------------------------------------------------------------------- files
def fuse_predictions(members: list[tuple[str | Path, str | Path]], out_dir: str | Path, split: str,
                     cfg: dict) -> dict:
    """Write ``cls_<split>.csv``, ``det_<split>.json`` and ``seg_<split>/`` (as a member's
    predictions, docs/data-contract.md) into ``out_dir`` from the members' (predictions folder,
    soft folder) pairs. ``cfg``: ``det`` (wbf or nms), ``det_iou``, ``det_max_per_image``."""
    if not members:
        raise ValueError("an ensemble needs at least one member")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict = {"split": split, "members": len(members)}

    t0 = time.perf_counter()
    cls = fuse_cls([soft.read_cls(Path(s) / "cls.npz") for _, s in members])
    atomic.write_csv(out_dir / f"cls_{split}.csv", pd.DataFrame({"name": cls["names"], "label": cls["label"]}))
    summary["cls"] = {"images": len(cls["names"]), "seconds": round(time.perf_counter() - t0, 2)}

    t0 = time.perf_counter()
    dets = [json.loads((Path(p) / f"det_{split}.json").read_text()) for p, _ in members]
    fused = fuse_det(dets, cfg["det"], float(cfg["det_iou"]), int(cfg["det_max_per_image"]))
    atomic.write_json(out_dir / f"det_{split}.json", fused, indent=None)
    summary["det"] = {"boxes_in": sum(map(len, dets)), "boxes": len(fused), "seconds": round(time.perf_counter() - t0, 2)}

    t0 = time.perf_counter()
    stems = seg_stems(members[0][1])
    for _, s in members[1:]:
        if seg_stems(s) != stems:
            raise ValueError(f"ensemble members segment different images ({members[0][1]} vs {s})")
    final = out_dir / f"seg_{split}"
    tmp = Path(tempfile.mkdtemp(prefix=f".seg_{split}.", dir=out_dir))
    try:
        for stem in stems:  # one image of every member at a time
            label = fuse_seg_maps([soft.read_seg(Path(s) / "seg" / f"{stem}.npz") for _, s in members])
            if not cv2.imwrite(str(tmp / f"{stem}.png"), label):
                raise OSError(f"cannot write {tmp / stem}.png")
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary["seg"] = {"images": len(stems), "seconds": round(time.perf_counter() - t0, 2)}
    log.info("fused %d members' %s predictions into %s: %s", len(members), split, out_dir, summary)
    return summary
