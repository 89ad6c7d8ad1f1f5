"""Build the AllInOne submission from the inference stage's predictions.

Predictions (docs/data-contract.md), for a split ``<s>`` (``test`` for the leaderboard):

* ``cls_<s>.csv``: ``name`` (image file name), ``label`` (class id);
* ``det_<s>.json``: a COCO results list; ``image_id`` is the canonical ``det_<s>.json`` image id,
  which on the test split is the 1-based line of the image in ``dec/test.txt``; ``bbox`` is
  ``[x, y, w, h]`` in original pixels;
* ``seg_<s>/<JPEG stem>.png``: label maps of class ids at the original resolution.

The submission (``competition-formats.md``)::

    {"cls": [{"00001.jpg": 13}, ...],
     "dec": [{"image_id": 1, "category_id": 27, "bbox": [x, y, w, h], "score": 0.87}, ...],
     "seg": [{"00054.png": {"0": [[[x, y], ...], ...], ..., "18": []}}, ...]}

or, with ``form="object"``, ``cls`` and ``seg`` as plain objects keyed by image name.

The builder is deliberately lenient: it writes what the predictions say, in the canonical order
(unknown names last), and leaves judging to :mod:`.validate`, which the packager runs on the exact
bytes before anything is zipped. It only normalises what cannot change a score: boxes that leave
their image by less than the validator's tolerance are clipped to it, integral float ids become
ints, non-finite numbers become ``null`` (JSON has no NaN) so that the validator names them.
Problems that cannot show in the JSON (an unreadable or wrongly sized label map, values that are
not class ids) are returned as ``problems``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from . import jsonio
from .polygons import label_map_polygons
from .reference import AllInOneReference

log = logging.getLogger(__name__)

FORMS = ("list", "object")
BBOX_DECIMALS = 2
SCORE_DECIMALS = 6
_INT = re.compile(r"^[+-]?\d+$")


@dataclass
class AllInOneSubmission:
    """The three entries, in output order; polygons stay numpy arrays until serialised."""

    cls: list[tuple[str, object]]
    dec: list[dict]
    seg: list[tuple[str, dict[str, list[np.ndarray]]]]
    form: str = "list"
    problems: list[tuple[str, str]] = field(default_factory=list)  # (where, what) in the predictions
    dropped_boxes: int = 0  # beyond max_dets_per_image, or empty once clipped to the image

    def __post_init__(self) -> None:
        if self.form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, not {self.form!r}")

    def _seg_text(self, classes: dict[str, list[np.ndarray]]) -> str:
        return "{" + ",".join(f'"{k}":' + jsonio.dumps([p.tolist() for p in polys])
                              for k, polys in classes.items()) + "}"

    def to_json(self) -> bytes:
        """The submission file's bytes (stable: same predictions, same bytes).

        Each image's ``seg`` text is encoded as soon as it is made, so the peak is about twice
        the file's size (the pieces and the joined bytes), not four times."""
        with jsonio.gc_paused():
            if self.form == "list":
                cls_text = jsonio.json_list(jsonio.dumps({name: label}) for name, label in self.cls)
                seg_items = [f"{{{jsonio.dumps(key)}:{self._seg_text(classes)}}}".encode("ascii")
                             for key, classes in self.seg]
            else:
                cls_text = jsonio.json_object((name, jsonio.dumps(label)) for name, label in self.cls)
                seg_items = [f"{jsonio.dumps(key)}:{self._seg_text(classes)}".encode("ascii")
                             for key, classes in self.seg]
            dec_text = jsonio.json_list(jsonio.dumps(d) for d in self.dec)
        parts = [f'{{"cls":{cls_text},\n"dec":{dec_text},\n"seg":'.encode("ascii")]
        if not seg_items:
            parts.append(b"[]" if self.form == "list" else b"{}")
        else:
            parts.append(b"[\n" if self.form == "list" else b"{\n")
            for index, item in enumerate(seg_items):
                parts += (b",\n", item) if index else (item,)
            parts.append(b"\n]" if self.form == "list" else b"\n}")
        parts.append(b"}\n")
        return b"".join(parts)

    def to_obj(self) -> dict:
        """The same content as plain Python values (lists, dicts): what ``json.loads`` returns."""
        seg = [(key, {k: [p.tolist() for p in polys] for k, polys in classes.items()}) for key, classes in self.seg]
        if self.form == "list":
            return {"cls": [{n: v} for n, v in self.cls], "dec": [dict(d) for d in self.dec],
                    "seg": [{k: v} for k, v in seg]}
        return {"cls": dict(self.cls), "dec": [dict(d) for d in self.dec], "seg": dict(seg)}


# ----------------------------------------------------------------------------- classification


def _label_value(text: str):
    text = text.strip()
    return int(text) if _INT.match(text) else (text if text else None)


def build_cls(cls_csv: str | Path, reference: AllInOneReference) -> list[tuple[str, object]]:
    """``(name, class id)`` in the split's order; unknown names after, in file order."""
    with open(cls_csv, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"name", "label"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{cls_csv}: missing column(s) {sorted(missing)} (expected name,label)")
        rows = [(row["name"], _label_value(row["label"] or "")) for row in reader]
    order = {name: i for i, name in enumerate(reference.cls_names)}
    known = sorted((r for r in rows if r[0] in order), key=lambda r: order[r[0]])
    return known + [r for r in rows if r[0] not in order]


# ----------------------------------------------------------------------------- detection


def _number(value):
    """Finite numbers as float; integral floats stay numbers; NaN/inf -> None; others unchanged."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return float(value) if math.isfinite(value) else None


def _as_id(value):
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return int(value) if value.is_integer() else value
    return value


def _clean_box(bbox, size, tolerance: float):
    """Clip a box that leaves its image by at most ``tolerance`` px and round it; leave others be.

    Returns None for a box that clipping leaves empty (it lay wholly in the tolerance margin
    outside the image, so it cannot overlap anything)."""
    if not isinstance(bbox, list) or len(bbox) != 4:
        return bbox
    values = [_number(v) for v in bbox]
    if not all(isinstance(v, float) for v in values) or size is None:
        return values
    x, y, w, h = values
    width, height = size
    x1, y1 = x + w, y + h
    t = tolerance
    if w > 0 and h > 0 and x >= -t and y >= -t and x1 <= width + t and y1 <= height + t:
        x, y = max(x, 0.0), max(y, 0.0)
        x1, y1 = min(x1, float(width)), min(y1, float(height))
        if x1 <= x or y1 <= y:
            return None
        rx, ry, rx1, ry1 = (round(v, BBOX_DECIMALS) for v in (x, y, x1, y1))
        rw, rh = round(rx1 - rx, BBOX_DECIMALS), round(ry1 - ry, BBOX_DECIMALS)
        # a sliver thinner than the rounding keeps its exact size rather than become empty
        return [rx, ry, rw, rh] if rw > 0 and rh > 0 else [x, y, x1 - x, y1 - y]
    return [round(v, BBOX_DECIMALS) for v in values]


def build_dec(det_json: str | Path, reference: AllInOneReference, max_dets_per_image: int = 100,
              box_tolerance: float = 1.0) -> tuple[list[dict], int]:
    """Detections sorted by image id then score (highest first), at most ``max_dets_per_image``
    per image; returns ``(detections, number dropped)``: beyond the bound, or empty once clipped."""
    results = json.loads(Path(det_json).read_text())
    if not isinstance(results, list):
        raise ValueError(f"{det_json}: expected a COCO results list, got {type(results).__name__}")
    by_image: dict[object, list[tuple[int, dict]]] = {}
    outside = 0
    for index, det in enumerate(results):
        if not isinstance(det, dict):
            by_image.setdefault(None, []).append((index, det))
            continue
        out = {}
        if "image_id" in det:
            out["image_id"] = _as_id(det["image_id"])
        if "category_id" in det:
            out["category_id"] = _as_id(det["category_id"])
        if "bbox" in det:
            size = reference.det_images.get(out.get("image_id")) if isinstance(out.get("image_id"), int) else None
            out["bbox"] = _clean_box(det["bbox"], size, box_tolerance)
            if out["bbox"] is None:
                outside += 1
                continue
        if "score" in det:
            score = _number(det["score"])
            out["score"] = round(score, SCORE_DECIMALS) if isinstance(score, float) else score
        key = out.get("image_id")
        usable_id = isinstance(key, int) and not isinstance(key, bool)
        by_image.setdefault(key if usable_id else None, []).append((index, out))

    def rank(item):
        index, det = item
        score = det.get("score") if isinstance(det, dict) else None
        ok = isinstance(score, float)
        # Unusable scores first (never cut by the bound, so the validator sees them), then by score.
        return (ok, -score if ok else 0.0, index)

    kept, dropped = [], 0
    ordered_ids = [i for i in reference.det_images if i in by_image]
    ordered_ids += sorted(i for i in by_image if i is not None and i not in reference.det_images)
    for image_id in ordered_ids:
        group = sorted(by_image[image_id], key=rank)
        usable = [g for g in group if isinstance(g[1].get("score"), float)]
        bad = [g for g in group if not isinstance(g[1].get("score"), float)]
        dropped += max(0, len(usable) - max_dets_per_image)
        kept.extend(det for _, det in bad + usable[:max_dets_per_image])
    kept.extend(det for _, det in by_image.get(None, []))
    if outside:
        log.info("dec: dropped %d box(es) lying wholly in the %g px margin outside their image",
                 outside, box_tolerance)
    return kept, dropped + outside


# ----------------------------------------------------------------------------- segmentation


def _read_label_map(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        if image.mode not in ("L", "P"):
            raise ValueError(f"label map must be single-channel 8-bit (PNG mode L or P), got mode {image.mode}")
        return np.asarray(image, dtype=np.uint8)


def _seg_one(args):
    key, path, size, num_classes, small = args
    try:
        label = _read_label_map(path)
    except FileNotFoundError:
        return key, None, None
    except Exception as error:  # unreadable file: report, do not crash the whole build
        return key, None, f"unreadable label map ({type(error).__name__}: {error})"
    if size is not None and (label.shape[1], label.shape[0]) != tuple(size):
        return key, None, (f"label map is {label.shape[1]}x{label.shape[0]}, the image is "
                           f"{size[0]}x{size[1]} (predictions must be in original pixels)")
    counts = np.bincount(label.ravel(), minlength=256)
    bad = [int(v) for v in np.flatnonzero(counts[num_classes:]) + num_classes]
    if bad:
        return key, None, (f"label map holds values {bad[:10]} that are not class ids "
                           f"0..{num_classes - 1} ({int(counts[num_classes:].sum())} pixels)")
    polygons = label_map_polygons(label, num_classes, small)
    return key, {str(c): polys for c, polys in polygons.items()}, None


def build_seg(seg_dir: str | Path, reference: AllInOneReference, small: str = "pad",
              threads: int = 1) -> tuple[list[tuple[str, dict]], list[tuple[str, str]]]:
    """Polygons of every ``<stem>.png`` in ``seg_dir``: the split's images in order, then any
    other PNG found there (sorted). Returns ``(entries, problems)``; an image whose map is missing
    is simply absent (the validator reports it)."""
    seg_dir = Path(seg_dir)
    if not seg_dir.is_dir():
        raise FileNotFoundError(f"{seg_dir}: segmentation prediction folder is missing")
    present = sorted(p.name for p in seg_dir.iterdir() if p.suffix.lower() == ".png")
    present_set = set(present)
    jobs = [(key, seg_dir / key, size, reference.num_seg_classes, small)
            for key, size in reference.seg_images.items() if key in present_set]
    jobs += [(name, seg_dir / name, None, reference.num_seg_classes, small)
             for name in present if name not in reference.seg_images]
    entries, problems = [], []
    with ThreadPoolExecutor(max(1, int(threads))) as pool:
        for key, classes, problem in pool.map(_seg_one, jobs):
            if problem:
                problems.append((f"{seg_dir.name}/{key}", problem))
            elif classes is not None:
                entries.append((key, classes))
    return entries, problems


# ----------------------------------------------------------------------------- all three


def build_allinone(cls_csv: str | Path, det_json: str | Path, seg_dir: str | Path,
                   reference: AllInOneReference, form: str = "list", max_dets_per_image: int = 100,
                   small_contours: str = "pad", box_tolerance: float = 1.0,
                   threads: int = 1) -> AllInOneSubmission:
    cls_entries = build_cls(cls_csv, reference)
    dec, dropped = build_dec(det_json, reference, max_dets_per_image, box_tolerance)
    seg, problems = build_seg(seg_dir, reference, small_contours, threads)
    if dropped:
        log.info("dec: %d box(es) dropped (at most %d per image, highest scores kept)", dropped,
                 max_dets_per_image)
    return AllInOneSubmission(cls_entries, dec, seg, form, problems, dropped)
