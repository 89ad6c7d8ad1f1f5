"""Predictions of one split in the form docs/data-contract.md ('Predictions') names, for split ``s``
(``test`` for the submission; a labelled split such as ``val`` to score a packaged submission locally):

``<out_dir>/cls_<s>.csv``   columns ``name`` (image file name) and ``label`` (class id);
``<out_dir>/det_<s>.json``  COCO results list: ``image_id`` (the image's id in the canonical
                            ``det_<s>.json``; for the test split its 1-based line in ``dec/test.txt``),
                            ``category_id``, ``bbox`` [x, y, w, h] in original pixels, ``score``; at
                            most ``det_max_per_image`` per image, best first;
``<out_dir>/seg_<s>/<jpeg stem>.png``  single-channel label maps at the original resolution.

Each file is written beside its final name and renamed into place, so it is complete or absent.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import cv2
import pandas as pd

from .. import atomic
from ..ensemble import soft
from ..data.canonical import Dataset
from .datasets import read_rgb
from .evaluate import splits_of
from ..device import resolve_device
from .inference import classify, coco_results, detect_image, load_model, segment

log = logging.getLogger(__name__)


def predict(model_path: str | Path, dataset_dir: str | Path, out_dir: str | Path, split: str | None,
            settings: Mapping, soft_dir: str | Path | None = None, soft_top_k: int = 5) -> dict:
    """Predict the three tasks of ``split`` (None: the manifest's test split) with the ``allinone``
    settings (``inference``, ``device``, ``precision``); return counts and timings.

    ``soft_dir``: also write the compact soft predictions an ensemble fuses (:mod:`..ensemble.soft`):
    ``cls.npz`` (top ``soft_top_k`` probabilities) and ``seg/<stem>.npz`` (uint8 probabilities)."""
    cfg, precision = settings["inference"], settings["precision"]
    dev = resolve_device(settings["device"])
    data = Dataset.open(dataset_dir)
    split = split or splits_of(data)["test"]
    model, blob = load_model(model_path, dev)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict = {"split": split}

    t0 = time.perf_counter()
    cls = data.table(f"cls_{split}")
    cls_names = [Path(p).name for p in cls["image"]]
    pred = classify(model, list(cls["path"]), blob["input"]["cls_size"], dev, cfg, precision,
                    with_prob=soft_dir is not None)
    if soft_dir is not None:
        pred, prob = pred
        soft.write_cls(Path(soft_dir) / "cls.npz", cls_names, prob, soft_top_k)
    atomic.write_csv(out_dir / f"cls_{split}.csv", pd.DataFrame({"name": cls_names, "label": pred.astype(int)}))
    summary["cls"] = {"images": len(cls), "seconds": round(time.perf_counter() - t0, 2)}

    t0 = time.perf_counter()
    coco = data.coco(split)
    cat_ids = blob["class_names"]["det_category_ids"]
    results = []
    for im in coco["images"]:
        det = detect_image(model, read_rgb(data.resolve(im["file_name"])), dev, cfg, precision)
        results += coco_results(im["id"], det, cat_ids)
    atomic.write_json(out_dir / f"det_{split}.json", results, indent=None)
    summary["det"] = {"images": len(coco["images"]), "boxes": len(results),
                      "seconds": round(time.perf_counter() - t0, 2)}

    t0 = time.perf_counter()
    summary["seg"] = {"images": _predict_seg(model, data, split, out_dir, dev, cfg, precision, soft_dir),
                      "seconds": round(time.perf_counter() - t0, 2)}
    log.info("predictions of %s written to %s: %s", split, out_dir, summary)
    return summary


def _predict_seg(model, data: Dataset, split: str, out_dir: Path, dev, cfg, precision: str, soft_dir) -> int:
    """Label maps of the split into ``<out_dir>/seg_<split>/`` (a complete folder or none)."""
    seg = data.table(f"seg_{split}")
    names = [Path(p).stem for p in seg["image"]]
    if len(set(names)) != len(names):
        raise ValueError(f"seg_{split}: two images share a file stem; their label maps would collide")
    final = out_dir / f"seg_{split}"
    for leftover in out_dir.glob(f".seg_{split}.*"):  # of a killed run: never read, removed
        shutil.rmtree(leftover, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".seg_{split}.", dir=out_dir))
    if soft_dir is not None:
        (Path(soft_dir) / "seg").mkdir(parents=True, exist_ok=True)
    try:
        for i, label_map in segment(model, list(seg["path"]), dev, cfg, precision, with_prob=soft_dir is not None):
            if soft_dir is not None:
                label_map, prob = label_map
                soft.write_seg(Path(soft_dir) / "seg" / f"{names[i]}.npz", prob)
            if not cv2.imwrite(str(tmp / f"{names[i]}.png"), label_map):
                raise OSError(f"cannot write {tmp / names[i]}.png")
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return len(seg)
