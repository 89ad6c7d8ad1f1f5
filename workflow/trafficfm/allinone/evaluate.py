"""Validation metrics with the challenge's definitions, and the evaluation stage.

- top-1 accuracy;
- mAP at IoU 0.5 from pycocotools' COCOeval (``stats[1]``: all areas, 100 detections), with the
  per-category AP50 from its precision array (categories without ground truth are left out, as
  COCOeval does);
- mIoU over all segmentation classes with 255 ignored; as in the organisers' PaddleSeg metric, a
  class with an empty union counts as IoU 0 and the mean is over every class.

``val_metrics.json`` = ``{"top1", "map50", "miou", "score"}``, fractions in [0, 1], score = their mean.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .. import atomic
from ..data.canonical import Dataset
from .inference import classify, coco_results, detect_image, segment
from .datasets import read_mask, read_rgb

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------- metrics
def top1_accuracy(pred, target) -> float:
    pred, target = np.asarray(pred), np.asarray(target)
    return float((pred == target).mean()) if len(target) else 0.0


def per_class_accuracy(pred, target, names: list[str]) -> pd.DataFrame:
    pred, target = np.asarray(pred), np.asarray(target)
    rows = []
    for i, name in enumerate(names):
        m = target == i
        n = int(m.sum())
        rows.append({"class_id": i, "name": name, "images": n, "correct": int((pred[m] == i).sum()),
                     "accuracy": float((pred[m] == i).mean()) if n else float("nan")})
    return pd.DataFrame(rows)


def confusion_matrix(pred: np.ndarray, target: np.ndarray, num_classes: int, ignore_index: int = 255) -> np.ndarray:
    """(num_classes x num_classes) counts, rows = ground truth; ignored pixels are skipped."""
    valid = target != ignore_index
    t = target[valid].astype(np.int64)
    p = pred[valid].astype(np.int64)
    if t.size and (t.max() >= num_classes or t.min() < 0):
        raise ValueError(f"label value {int(t.max())} outside 0..{num_classes - 1} and not {ignore_index}")
    if p.size and (p.max() >= num_classes or p.min() < 0):
        raise ValueError(f"predicted value {int(p.max())} outside 0..{num_classes - 1}")
    cm = np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return cm.reshape(num_classes, num_classes)


def iou_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Per-class IoU = TP / (GT + Pred - TP); 0 where the union is empty (PaddleSeg's convention)."""
    tp = np.diag(cm).astype(np.float64)
    gt = cm.sum(1).astype(np.float64)
    pr = cm.sum(0).astype(np.float64)
    union = gt + pr - tp
    return np.where(union > 0, tp / np.maximum(union, 1), 0.0)


def coco_map50(gt: dict, results: list[dict]) -> tuple[float, pd.DataFrame]:
    """mAP@0.5 (COCOeval ``stats[1]``) and a per-category table (AP50, ground-truth boxes)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = dict(gt)
    gt.setdefault("info", {})
    gt.setdefault("licenses", [])
    cats = gt["categories"]
    n_gt = {c["id"]: 0 for c in cats}
    for a in gt.get("annotations", []):
        n_gt[a["category_id"]] += 1
    table = pd.DataFrame([{"category_id": c["id"], "name": c["name"], "gt_boxes": n_gt[c["id"]], "ap50": float("nan")}
                          for c in cats])
    if not gt.get("annotations"):
        return 0.0, table
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        if not results:
            return 0.0, table.assign(ap50=[0.0 if n else float("nan") for n in table["gt_boxes"]])
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    prec = ev.eval["precision"]  # T x R x K x A x M
    t50 = int(np.argmin(np.abs(ev.params.iouThrs - 0.5)))
    ap = []
    for k, cid in enumerate(ev.params.catIds):
        p = prec[t50, :, k, 0, -1]
        p = p[p > -1]
        ap.append(float(p.mean()) if p.size else float("nan"))
    per = dict(zip(ev.params.catIds, ap))
    table["ap50"] = [per.get(c, float("nan")) if n else float("nan") for c, n in zip(table["category_id"], table["gt_boxes"])]
    return float(max(ev.stats[1], 0.0)), table


# ----------------------------------------------------------------------------------- stage helpers
def splits_of(data: Dataset) -> dict[str, str]:
    """Training, validation and test split names, as the converter recorded them in the manifest."""
    s = data.manifest["splits"]
    return {"train": s["train"][0], "val": s["train"][-1], "test": s["test"]}


def score_predictions(data: Dataset, split: str, cls_pred, det_results: list[dict], seg_maps,
                      limit: int | None = None) -> tuple[dict, dict[str, pd.DataFrame]]:
    """Metrics and per-class tables of predictions of ``split`` (its first ``limit`` items per task
    when given): ``cls_pred`` class ids in the table's row order, ``det_results`` COCO result
    records, ``seg_maps`` (row index, label map) pairs for every row."""
    cls = data.table(f"cls_{split}")[:limit]
    labels = cls["label"].to_numpy()
    cls_pred = np.asarray(cls_pred)
    top1 = top1_accuracy(cls_pred, labels)
    cls_table = per_class_accuracy(cls_pred, labels, list(data.manifest["cls_classes"]))

    gt = data.coco(split)
    if limit is not None:
        keep = {im["id"] for im in gt["images"][:limit]}
        gt = {**gt, "images": gt["images"][:limit], "annotations": [a for a in gt["annotations"] if a["image_id"] in keep]}
        det_results = [r for r in det_results if r["image_id"] in keep]
    map50, det_table = coco_map50(gt, det_results)

    seg = data.table(f"seg_{split}")[:limit]
    nseg = len(data.manifest["seg_classes"])
    ignore = int(data.manifest.get("ignore_index", 255))
    cm = np.zeros((nseg, nseg), dtype=np.int64)
    label_paths = list(seg["label_path"])
    seen = 0
    for i, pred_map in seg_maps:
        cm += confusion_matrix(pred_map, read_mask(label_paths[i]), nseg, ignore)
        seen += 1
    if seen != len(seg):
        raise ValueError(f"seg_{split}: {seen} predicted label maps for {len(seg)} images")
    iou = iou_from_confusion(cm)
    seg_table = pd.DataFrame({
        "class_id": range(nseg), "name": data.manifest["seg_classes"], "iou": iou,
        "gt_pixels": cm.sum(1), "pred_pixels": cm.sum(0),
    })
    metrics = {"top1": top1, "map50": map50, "miou": float(iou.mean())}
    metrics["score"] = float(np.mean([metrics["top1"], metrics["map50"], metrics["miou"]]))
    return metrics, {"cls": cls_table, "det": det_table, "seg": seg_table}


def validate(model, blob: dict, data: Dataset, split: str, device, infer_cfg, limit: int | None,
             precision: str) -> tuple[dict, dict[str, pd.DataFrame]]:
    """Predict the three validation sets (each cut to ``limit`` items when given) in memory and score
    them (training-time validation; the evaluation stage scores the prediction files instead)."""
    timings = {}
    t0 = time.perf_counter()
    cls = data.table(f"cls_{split}")[:limit]
    cls_pred = classify(model, list(cls["path"]), blob["input"]["cls_size"], device, infer_cfg, precision)
    timings["cls_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cat_ids = blob["class_names"]["det_category_ids"]
    results = []
    for im in data.coco(split)["images"][:limit]:
        det = detect_image(model, read_rgb(data.resolve(im["file_name"])), device, infer_cfg, precision)
        results += coco_results(im["id"], det, cat_ids)
    timings["det_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    seg = data.table(f"seg_{split}")[:limit]
    seg_maps = list(segment(model, list(seg["path"]), device, infer_cfg, precision))
    timings["seg_s"] = time.perf_counter() - t0
    metrics, tables = score_predictions(data, split, cls_pred, results, seg_maps, limit)
    log.info("validation on %s%s: %s (%s)", split, f" (first {limit})" if limit else "",
             {k: round(v, 4) for k, v in metrics.items()}, {k: round(v, 1) for k, v in timings.items()})
    return metrics, tables


def read_predictions(data: Dataset, split: str, predictions_dir: str | Path):
    """The prediction files of ``split`` (docs/data-contract.md, 'Predictions') in the form
    ``score_predictions`` takes; a missing image's prediction is an error naming the file."""
    pred_dir = Path(predictions_dir)
    cls_file = pred_dir / f"cls_{split}.csv"
    table = pd.read_csv(cls_file, dtype={"name": str})
    by_name = dict(zip(table["name"], table["label"].astype(int)))
    names = [Path(p).name for p in data.table(f"cls_{split}")["image"]]
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ValueError(f"{cls_file}: no prediction for {len(missing)} image(s), e.g. {missing[0]}")
    det_results = json.loads((pred_dir / f"det_{split}.json").read_text())
    seg_dir = pred_dir / f"seg_{split}"

    def seg_maps():
        for i, image in enumerate(data.table(f"seg_{split}")["image"]):
            path = seg_dir / f"{Path(image).stem}.png"
            if not path.exists():
                raise ValueError(f"{seg_dir}: no label map {path.name} for {image}")
            yield i, read_mask(path)

    return [by_name[n] for n in names], det_results, seg_maps()


def evaluate(predictions_dir: str | Path, dataset_dir: str | Path, metrics_path: str | Path,
             tables_dir: str | Path, split: str | None = None, prefix: str = "val_") -> dict:
    """The evaluation stage: score the validation split's prediction files (written by the same
    code as the test predictions) into ``metrics_path`` (JSON) and
    ``tables_dir/<prefix>{cls,det,seg}_per_class.csv``."""
    data = Dataset.open(dataset_dir)
    split = split or splits_of(data)["val"]
    metrics, tables = score_predictions(data, split, *read_predictions(data, split, predictions_dir))
    tables_dir = Path(tables_dir)
    for task, table in tables.items():
        atomic.write_csv(tables_dir / f"{prefix}{task}_per_class.csv", table)
    atomic.write_json(metrics_path, metrics)
    log.info("validation on %s: %s", split, {k: round(v, 4) for k, v in metrics.items()})
    return metrics
