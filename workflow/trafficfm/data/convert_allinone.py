"""Convert the AllInOne release (classification, detection, segmentation) to canonical forms.

Input: the organisers' raw layout under a release root (names from ``data.layout.allinone``).
Output (docs/data-contract.md): ``manifest.json``, ``cls_{split}.csv``, ``det_{split}.json``,
``seg_{split}.csv`` in ``out_dir``. Every record is checked; see :mod:`trafficfm.data.errors`.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
from PIL import Image

from .. import atomic
from .classes import BDD100K_CLASSES, IGNORE_INDEX, TT100K_CATEGORIES
from .errors import ErrorCollector
from .images import list_images, probe_many
from .textfiles import numbered_lines

log = logging.getLogger(__name__)

# A box may touch the border after float rounding; anything further out is an annotation error.
BOX_TOLERANCE_PX = 1.0


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


# --------------------------------------------------------------------------- classification


def convert_cls_split(root: Path, base: str, split: str, layout: dict, num_classes: int,
                      errors: ErrorCollector) -> pd.DataFrame:
    """Parse ``cls/<split>.txt`` (``<image> <class id>``, space or tab) into a table."""
    list_path = root / base / layout["cls_list"].format(split=split)
    image_dir = root / base / layout["cls_images"].format(split=split)
    shown = _rel(list_path, root)
    rows = []
    for number, line in numbered_lines(list_path):
        parts = line.rsplit(None, 1)
        if len(parts) != 2:
            errors.add(shown, f"line {number}", f"expected '<image> <class id>', got {line!r}")
            continue
        name, label_text = parts
        try:
            label = int(label_text)
        except ValueError:
            errors.add(shown, f"line {number}", f"class id {label_text!r} is not an integer")
            continue
        if not 0 <= label < num_classes:
            errors.add(shown, f"line {number}", f"class id {label} out of range 0..{num_classes - 1}")
            continue
        rows.append((number, name, label))
    paths = [image_dir / name for _, name, _ in rows]
    table = []
    for (number, name, label), path, size in zip(rows, paths, probe_many(paths)):
        if isinstance(size, str):
            errors.add(shown, f"line {number}", f"{_rel(path, root)}: {size}")
            continue
        table.append((_rel(path, root), label, size[0], size[1]))
    return pd.DataFrame(table, columns=["image", "label", "width", "height"])


def convert_image_folder(root: Path, folder: Path, label_value, errors: ErrorCollector) -> pd.DataFrame:
    """A test split given only as a folder of images."""
    names = list_images(folder)
    if not names:
        errors.add(_rel(folder, root) if folder.is_relative_to(root) else str(folder), "folder",
                   "no images found")
    paths = [folder / n for n in names]
    table = []
    for path, size in zip(paths, probe_many(paths)):
        if isinstance(size, str):
            errors.add(_rel(path, root), "image", size)
            continue
        table.append((_rel(path, root), label_value, size[0], size[1]))
    return pd.DataFrame(table, columns=["image", "label", "width", "height"])


# --------------------------------------------------------------------------- detection


def _check_box(bbox, width: int, height: int) -> str | None:
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        return f"bbox must be [x, y, w, h], got {bbox!r}"
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError):
        return f"bbox has a non-numeric value: {bbox!r}"
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        return f"bbox has a non-finite value: {bbox!r}"
    if w <= 0 or h <= 0:
        return f"bbox {bbox} has non-positive width or height"
    t = BOX_TOLERANCE_PX
    if x < -t or y < -t or x + w > width + t or y + h > height + t:
        return f"bbox {bbox} lies outside its {width}x{height} image"
    return None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# The fields a COCO record must have, and what each must hold.
IMAGE_FIELDS = {"id": (_is_int, "an integer"), "file_name": (lambda v: isinstance(v, str) and v, "a file name"),
                "width": (lambda v: _is_int(v) and v > 0, "a positive integer"),
                "height": (lambda v: _is_int(v) and v > 0, "a positive integer")}
ANNOTATION_FIELDS = {"id": (_is_int, "an integer"), "image_id": (_is_int, "an integer"),
                     "category_id": (_is_int, "an integer"), "bbox": (lambda v: True, "")}


def _field_problem(record, fields: dict) -> str | None:
    """Why ``record`` is not an object with ``fields`` of the right kinds (None when it is)."""
    if not isinstance(record, dict):
        return f"expected an object, got {type(record).__name__}"
    missing = [k for k in fields if k not in record]
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    wrong = [f"{k} must be {what}, got {record[k]!r}" for k, (ok, what) in fields.items() if not ok(record[k])]
    return "; ".join(wrong) or None


def convert_det_split(root: Path, base: str, split: str, layout: dict, categories: list[dict],
                      errors: ErrorCollector) -> dict:
    """Check a COCO file against its images and rewrite it with root-relative file names."""
    json_path = root / base / layout["det_json"].format(split=split)
    image_dir = root / base / layout["det_images"].format(split=split)
    shown = _rel(json_path, root)
    coco = _read_coco(json_path, shown, errors)
    if coco is None:
        return {"images": [], "annotations": [], "categories": categories}
    images = _det_images(coco["images"], image_dir, root, shown, errors)
    annotations = _det_annotations(coco["annotations"], images, {c["id"] for c in categories}, shown, errors)
    return {"images": list(images.values()), "annotations": annotations, "categories": categories}


def _read_coco(json_path: Path, shown: str, errors: ErrorCollector) -> dict | None:
    """The COCO file's content, or None (the problem recorded) when it cannot be used."""
    try:
        coco = json.loads(json_path.read_bytes())
    except FileNotFoundError:
        errors.add(shown, "file", "missing")
        return None
    except json.JSONDecodeError as error:
        errors.add(shown, f"line {error.lineno} column {error.colno}", f"invalid JSON: {error.msg}")
        return None
    except UnicodeDecodeError as error:
        errors.add(shown, f"byte {error.start}", "not UTF-8 text")
        return None
    if not isinstance(coco, dict):
        errors.add(shown, "top level", f"expected a COCO object, got {type(coco).__name__}")
        return None
    for key in ("images", "annotations"):
        if not isinstance(coco.get(key), list):
            errors.add(shown, key, f"'{key}' must be a list")
            return None
    return coco


def _det_images(records: list, image_dir: Path, root: Path, shown: str, errors: ErrorCollector) -> dict:
    """Image id -> canonical image record, for the records whose file exists with the stated size."""
    usable, seen_ids = [], set()
    for index, record in enumerate(records):
        where = f"images[{index}]"
        problem = _field_problem(record, IMAGE_FIELDS)
        if problem:
            errors.add(shown, where, problem)
            continue
        if record["id"] in seen_ids:
            errors.add(shown, f"{where} (id={record['id']})", "duplicate image id")
            continue
        usable.append((index, record))
        seen_ids.add(record["id"])
    probes = probe_many([image_dir / r["file_name"] for _, r in usable])
    images = {}
    for (index, record), size in zip(usable, probes):
        where = f"images[{index}] (id={record['id']}, {record['file_name']})"
        if isinstance(size, str):
            errors.add(shown, where, size)
            continue
        if tuple(size) != (record["width"], record["height"]):
            errors.add(shown, where, f"width/height {record['width']}x{record['height']} do not match "
                                     f"the image's {size[0]}x{size[1]}")
            continue
        images[record["id"]] = {"id": record["id"], "file_name": _rel(image_dir / record["file_name"], root),
                                "width": size[0], "height": size[1]}
    return images


def _det_annotations(records: list, images: dict, valid_ids: set, shown: str, errors: ErrorCollector) -> list:
    """The valid annotations, boxes clipped to their image (within the rounding tolerance)."""
    annotations, seen = [], set()
    for index, ann in enumerate(records):
        where = f"annotations[{index}]" + (f" (id={ann.get('id')!r})" if isinstance(ann, dict) else "")
        problem = _field_problem(ann, ANNOTATION_FIELDS)
        if problem:
            errors.add(shown, where, problem)
            continue
        if ann["id"] in seen:
            errors.add(shown, where, "duplicate annotation id")
            continue
        image = images.get(ann["image_id"])
        if image is None:
            errors.add(shown, where, f"image_id {ann['image_id']} is not a valid image of this file")
            continue
        if ann["category_id"] not in valid_ids:
            errors.add(shown, where, f"category_id {ann['category_id']} is not one of the "
                                     f"{len(valid_ids)} categories")
            continue
        problem = _check_box(ann["bbox"], image["width"], image["height"])
        if problem:
            errors.add(shown, where, problem)
            continue
        # Clip the rounding tolerance so every later stage can trust boxes to be inside.
        x, y, w, h = (float(v) for v in ann["bbox"])
        x0, y0 = max(x, 0.0), max(y, 0.0)
        x1, y1 = min(x + w, image["width"]), min(y + h, image["height"])
        box = [x0, y0, x1 - x0, y1 - y0]
        seen.add(ann["id"])
        annotations.append({"id": ann["id"], "image_id": ann["image_id"], "category_id": ann["category_id"],
                            "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
    return annotations


def convert_det_test(root: Path, base: str, layout: dict, categories: list[dict],
                     errors: ErrorCollector) -> dict:
    """``dec/test.txt`` -> COCO images whose id is the 1-based line number (the submission's id)."""
    list_path = root / base / layout["det_test_list"]
    split = layout["test_split"]
    image_dir = root / base / layout["det_images"].format(split=split)
    shown = _rel(list_path, root)
    entries = list(numbered_lines(list_path))
    # Blank lines would shift the organisers' numbering: ids count non-blank lines only.
    paths = [image_dir / name for _, name in entries]
    images = []
    for position, ((number, name), path, size) in enumerate(zip(entries, paths, probe_many(paths)), 1):
        if isinstance(size, str):
            errors.add(shown, f"line {number}", f"{_rel(path, root)}: {size}")
            continue
        images.append({"id": position, "file_name": _rel(path, root), "width": size[0], "height": size[1]})
    return {"images": images, "annotations": [], "categories": categories}


def check_with_pycocotools(coco: dict, path: Path) -> None:
    """Load the written file with pycocotools: the format every detection tool expects."""
    from pycocotools.coco import COCO

    api = COCO()
    api.dataset = coco
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        api.createIndex()
    if coco["annotations"]:
        assert set(api.getImgIds()) >= {a["image_id"] for a in coco["annotations"]}, path


# --------------------------------------------------------------------------- segmentation


def _check_label(args) -> str | None:
    label_path, size, num_classes = args
    try:
        with Image.open(label_path) as label:
            if label.mode not in ("L", "P"):
                return f"label map must be single-channel (mode L or P), got mode {label.mode}"
            if label.size != size:
                return f"label map is {label.size[0]}x{label.size[1]}, image is {size[0]}x{size[1]}"
            # PIL's C histogram avoids copying the map into numpy (L and P maps have 256 bins)
            present = [value for value, count in enumerate(label.histogram()) if count]
    except FileNotFoundError:
        return "label map is missing"
    except Exception as error:
        return f"label map is unreadable ({type(error).__name__}: {error})"
    bad = [int(v) for v in present if v >= num_classes and v != IGNORE_INDEX]
    if bad:
        return f"label values {bad} are neither class ids 0..{num_classes - 1} nor {IGNORE_INDEX}"
    return None


def convert_seg_split(root: Path, base: str, split: str, layout: dict, num_classes: int,
                      errors: ErrorCollector, with_labels: bool) -> pd.DataFrame:
    image_dir = root / base / layout["seg_images"].format(split=split)
    label_dir = root / base / layout["seg_labels"].format(split=split)
    names = list_images(image_dir)
    if not names:
        errors.add(_rel(image_dir, root), "folder", "no images found")
    paths = [image_dir / n for n in names]
    sizes = probe_many(paths)
    rows = []
    for path, size in zip(paths, sizes):
        if isinstance(size, str):
            errors.add(_rel(path, root), "image", size)
            continue
        rows.append((path, size))
    label_paths = [label_dir / (p.stem + ".png") for p, _ in rows] if with_labels else [None] * len(rows)
    if with_labels:
        with ThreadPoolExecutor(4) as pool:
            checks = list(pool.map(_check_label, [(lp, s, num_classes) for lp, (_, s) in zip(label_paths, rows)]))
    else:
        checks = [None] * len(rows)
    table = []
    for (path, size), label_path, problem in zip(rows, label_paths, checks):
        if problem:
            errors.add(_rel(label_path, root), f"pair of {path.name}", problem)
            continue
        table.append((_rel(path, root), _rel(label_path, root) if label_path else "", size[0], size[1]))
    return pd.DataFrame(table, columns=["image", "label", "width", "height"])


# --------------------------------------------------------------------------- the whole track


def convert_allinone(root: str | Path, out_dir: str | Path, layout: Mapping, num_classes: int, on_error: str,
                     det_categories: list[str] | None = None,
                     seg_classes: list[str] | None = None) -> dict:
    """Convert every split of the three tasks (``layout``: the ``data.layout.allinone`` settings;
    ``on_error``: ``data.on_error``); return the manifest (also written last)."""
    root = Path(root).resolve()
    out_dir = Path(out_dir)
    det_names = list(det_categories or TT100K_CATEGORIES)
    seg_names = list(seg_classes or BDD100K_CLASSES)
    categories = [{"id": i, "name": n, "supercategory": "traffic_sign"} for i, n in enumerate(det_names)]
    errors = ErrorCollector(on_error)
    train_base, test_base, test_split = layout["train_dir"], layout["test_dir"], layout["test_split"]

    cls_tables, det_files, seg_tables = {}, {}, {}
    for split in layout["train_splits"]:
        cls_tables[split] = convert_cls_split(root, train_base, split, layout, num_classes, errors)
        det_files[split] = convert_det_split(root, train_base, split, layout, categories, errors)
        seg_tables[split] = convert_seg_split(root, train_base, split, layout, len(seg_names), errors, True)
    cls_tables[test_split] = convert_image_folder(
        root, root / test_base / layout["cls_images"].format(split=test_split), -1, errors)
    det_files[test_split] = convert_det_test(root, test_base, layout, categories, errors)
    seg_tables[test_split] = convert_seg_split(root, test_base, test_split, layout, len(seg_names), errors, False)
    errors.raise_if_failing(f"AllInOne release at {root}")

    out_dir.mkdir(parents=True, exist_ok=True)
    for split, table in cls_tables.items():
        atomic.write_csv(out_dir / f"cls_{split}.csv", table)
    for split, coco in det_files.items():
        check_with_pycocotools(coco, out_dir / f"det_{split}.json")
        atomic.write_json(out_dir / f"det_{split}.json", coco, indent=None)
    for split, table in seg_tables.items():
        atomic.write_csv(out_dir / f"seg_{split}.csv", table)

    counts = {
        "cls": {s: int(len(t)) for s, t in cls_tables.items()},
        "det_images": {s: len(c["images"]) for s, c in det_files.items()},
        "det_boxes": {s: len(c["annotations"]) for s, c in det_files.items()},
        "seg": {s: int(len(t)) for s, t in seg_tables.items()},
    }
    manifest = {
        "track": "allinone",
        "root": str(root),
        "splits": {"train": list(layout["train_splits"]), "test": test_split},
        "cls_classes": [str(i) for i in range(num_classes)],
        "det_categories": categories,
        "seg_classes": seg_names,
        "ignore_index": IGNORE_INDEX,
        "counts": counts,
        "skipped": errors.summary(),
    }
    atomic.write_json(out_dir / "manifest.json", manifest)
    log.info("AllInOne converted: %s; %d record(s) skipped", counts, len(errors))
    return manifest
