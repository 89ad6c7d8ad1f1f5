"""The organisers' metrics on a labelled split, computed from a submission packaged like the real one.

AllInOne (the organisers' track 1 scorer; score = plain mean of the three):

* ``cls``: top-1 accuracy = correct entries / submitted entries (a valid submission has each image
  once, so this is the accuracy over the split); a prediction is correct when ``str(value)`` equals
  the label, i.e. the same integer;
* ``dec``: pycocotools ``COCOeval(gt, gt.loadRes(dec), "bbox")`` with default parameters;
  ``stats[1]``, the AP at IoU 0.5 over all areas with at most 100 boxes per image;
* ``seg``: every image's polygons drawn back into a label map (:func:`.polygons.rasterise`: zeros,
  then each class key in the JSON's order with one ``cv2.fillPoly``, polygons of <= 2 points
  skipped), then PaddleSeg's ``calculate_area``/``mean_iou`` over the whole split: per class,
  intersection / union of pixels whose label is not ``ignore_index``; a class with an empty union
  counts as IoU 0 and mIoU is the mean over *all* classes (so a split lacking a class cannot reach
  1.0; ``seg_miou_present`` averages only the classes present, for information).
  One deliberate difference: the organisers' scorer draws every image on a fixed 1280x720 canvas
  (the size of all BDD100K images); this one uses each image's own size, so it also works on the
  demo's smaller images and equals the organisers' on the real data.

Retrieval: mAP@10 as ``track2/tools/cal_map_json.py`` computes it, through the project's single
implementation (:func:`trafficfm.retrieval.metrics.scorer_map`) and matching rule
(:func:`trafficfm.retrieval.relevance.is_relevant`): the texts must be the queries in order, then
per query ``get = 1e-6``, ``ap += get / rank`` at each hit after ``get += 1``, ``ap /= get``.

Scoring assumes a valid submission: :func:`score_allinone_file` / :func:`score_retrieval_file`
validate first and refuse to score an invalid one.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import TrafficfmError
from .polygons import rasterise
from .reference import AllInOneReference, RetrievalReference
from .validate import Report, validate_allinone_file, validate_retrieval_file


class NotScorable(TrafficfmError, ValueError):
    """The split has no labels, or the submission is invalid (the report says why)."""

    def __init__(self, message: str, report: Report | None = None):
        super().__init__(message)
        self.report = report


def _entries(section):
    if isinstance(section, dict):
        return list(section.items())
    return [next(iter(item.items())) for item in section]


def score_cls(section, labels: dict[str, int]) -> float:
    entries = _entries(section)
    if not entries:
        return 0.0
    correct = sum(1 for name, value in entries if str(value) == str(labels[name]))
    return correct / len(entries)


def score_dec(detections: list[dict], coco_gt: dict) -> dict:
    """``{"map50": stats[1], "map": stats[0]}`` of pycocotools' bbox evaluation."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        # pycocotools 2.0.9 and 2.0.10 read ``info`` in loadRes (KeyError without it)
        gt.dataset = {"info": {}, "licenses": [], "images": coco_gt["images"],
                      "annotations": coco_gt["annotations"], "categories": coco_gt["categories"]}
        gt.createIndex()
        dt = gt.loadRes([{k: det[k] for k in ("image_id", "category_id", "bbox", "score")} for det in detections])
        evaluator = COCOeval(gt, dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = evaluator.stats
    return {"map50": float(stats[1]), "map": float(stats[0])}


def seg_areas(predicted: np.ndarray, label: np.ndarray, num_classes: int, ignore_index: int = 255) -> np.ndarray:
    """PaddleSeg's ``calculate_area`` as a (3, classes) array: intersection, prediction, label."""
    if predicted.shape != label.shape:
        raise ValueError(f"prediction {predicted.shape} and label {label.shape} differ in shape")
    valid = label != ignore_index
    truth = label[valid].astype(np.int64)
    guess = predicted[valid].astype(np.int64)
    inside = (truth < num_classes) & (guess < num_classes)
    confusion = np.bincount(truth[inside] * num_classes + guess[inside],
                            minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    pred_area = np.bincount(guess[guess < num_classes], minlength=num_classes)
    label_area = np.bincount(truth[truth < num_classes], minlength=num_classes)
    return np.stack([np.diag(confusion), pred_area, label_area])


def mean_iou(areas: np.ndarray) -> tuple[np.ndarray, float]:
    """PaddleSeg's ``mean_iou``: per-class IoU (0 where the union is empty) and their mean."""
    intersect, pred, label = (a.astype(np.float64) for a in areas)
    union = pred + label - intersect
    iou = np.divide(intersect, union, out=np.zeros_like(intersect), where=union > 0)
    return iou, float(iou.mean()) if len(iou) else 0.0


def score_seg(section, ref: AllInOneReference) -> dict:
    areas = np.zeros((3, ref.num_seg_classes), dtype=np.int64)
    for key, classes in _entries(section):
        with Image.open(ref.seg_label_paths[key]) as image:
            label = np.asarray(image, dtype=np.uint8)
        predicted = rasterise(classes, label.shape[0], label.shape[1])
        areas += seg_areas(predicted, label, ref.num_seg_classes, ref.ignore_index)
    iou, miou = mean_iou(areas)
    present = (areas[1] + areas[2] - areas[0]) > 0
    names = ref.seg_class_names or [str(c) for c in range(ref.num_seg_classes)]
    return {
        "miou": miou,
        "miou_present": float(iou[present].mean()) if present.any() else 0.0,
        "class_iou": {name: float(v) for name, v in zip(names, iou)},
        "classes_absent": [name for name, p in zip(names, present) if not p],
    }


def score_allinone(obj: dict, ref: AllInOneReference) -> dict:
    """Metrics of a parsed, valid AllInOne submission on a labelled split."""
    if not ref.labelled:
        raise NotScorable(f"the {ref.split} split has no labels; score a labelled split (e.g. val)")
    cls_top1 = score_cls(obj["cls"], ref.cls_labels)
    det = score_dec(obj["dec"], ref.coco)
    seg = score_seg(obj["seg"], ref)
    return {
        "track": "allinone",
        "split": ref.split,
        "score": (cls_top1 + det["map50"] + seg["miou"]) / 3.0,
        "cls_top1": cls_top1,
        "det_map50": det["map50"],
        "seg_miou": seg["miou"],
        "det_map50_95": det["map"],
        "seg_miou_present": seg["miou_present"],
        "seg_class_iou": seg["class_iou"],
        "seg_classes_absent": seg["classes_absent"],
    }


class _Relevant:
    """``name in relevant`` for one query, asking the project's matching rule lazily (a query can
    match thousands of images; only the submitted ten are ever asked about)."""

    def __init__(self, query_attribute: str, attributes: dict[str, str], cache: dict):
        self.query = query_attribute
        self.attributes = attributes
        self.cache = cache

    def __contains__(self, name) -> bool:
        from ..retrieval.relevance import is_relevant

        attribute = self.attributes.get(name)
        if attribute is None:
            return False
        key = (self.query, attribute)
        hit = self.cache.get(key)
        if hit is None:
            hit = self.cache[key] = bool(is_relevant(self.query, attribute))
        return hit


def score_retrieval(obj: dict, ref: RetrievalReference) -> dict:
    """mAP@10 of a parsed, valid retrieval submission on a labelled split (the organisers' loop)."""
    from ..retrieval.metrics import scorer_map

    if not ref.labelled:
        raise NotScorable(f"the {ref.split} split has no labels; score a labelled split (e.g. val)")
    cache: dict = {}
    relevant = [_Relevant(a, ref.image_attributes, cache) for a in ref.query_attributes]
    results = obj["results"]
    value = scorer_map(ref.queries, relevant, [r["text"] for r in results], [r["image_names"] for r in results])
    return {"track": "retrieval", "split": ref.split, "score": float(value), "map10": float(value),
            "queries": len(results)}


def _checked(report: Report, obj) -> None:
    if not report.valid:
        raise NotScorable(f"refusing to score an invalid submission:\n{report.to_text()}", report)


def score_allinone_file(path: str | Path, ref: AllInOneReference, form: str | None = None,
                        box_tolerance: float = 1.0) -> tuple[dict, Report]:
    report, obj = validate_allinone_file(path, ref, form, box_tolerance)
    _checked(report, obj)
    return score_allinone(obj, ref), report


def score_retrieval_file(path: str | Path, ref: RetrievalReference, top_k: int = 10) -> tuple[dict, Report]:
    report, obj = validate_retrieval_file(path, ref, top_k)
    _checked(report, obj)
    return score_retrieval(obj, ref), report
