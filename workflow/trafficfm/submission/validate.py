"""Check a submission (the JSON or its zip) against every rule of the format and the split.

Each violation has a ``code`` (what kind), a ``path`` into the JSON (``dec[17].bbox``,
``seg[2]["00054.png"]["7"][3]``) and a message saying what is wrong. The rules:

Container: a plain JSON file, or a zip holding exactly one ``.json`` file at its top level and
nothing else; UTF-8, no byte-order mark; standard JSON (no ``NaN``/``Infinity``); no object with a
key given twice.

AllInOne (top level exactly ``cls``, ``dec``, ``seg``):

* ``cls``: the list form (one-key objects) or the object form; every image of the split exactly
  once, no other name; each class id an integer (not a float or bool: the organisers compare
  ``str(value)`` with the label) in ``0..classes-1``;
* ``dec``: a non-empty list (pycocotools' ``loadRes`` cannot load an empty one) of objects with
  exactly ``image_id``, ``category_id``, ``bbox``, ``score``; ``image_id`` an integer image id of the
  split (1..N on the test split), ``category_id`` one of the manifest's category ids, ``bbox`` four
  finite numbers ``[x, y, w, h]`` with ``w, h > 0`` inside the image up to ``box_tolerance`` pixels,
  ``score`` a finite number in ``[0, 1]``. More than 100 boxes on one image is a warning (COCO's AP
  only counts the 100 best);
* ``seg``: list or object form like ``cls``; keys ``<JPEG stem>.png``, every image of the split
  exactly once; each value an object with exactly the keys ``"0"``..``"<classes-1>"``; each of
  those a list of polygons; a polygon a list of at least 3 ``[x, y]`` points of integers with
  ``0 <= x < width`` and ``0 <= y < height`` (the scorer silently skips polygons of 2 points or
  fewer, so they are an error here).

Retrieval (top level exactly ``results``): as many entries as queries, entry *i* an object with
exactly ``text`` (equal to query *i*'s text: the organisers reject the file otherwise) and
``image_names`` (exactly ``top_k`` distinct names of the split's images).

A submission may also be checked for one form only (``form="list"`` or ``"object"``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import jsonio
from .reference import AllInOneReference, RetrievalReference

COCO_MAX_DETS = 100
DEC_KEYS = ("image_id", "category_id", "bbox", "score")


@dataclass(frozen=True)
class Violation:
    code: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass
class Report:
    """The outcome of one validation: every violation counted, the first ``keep`` listed."""

    track: str
    split: str
    source: str = ""
    member: str | None = None
    form: str | None = None
    keep: int = 1000
    violations: list[Violation] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    sha256: str | None = None

    def add(self, code: str, path: str, message: str) -> None:
        self.counts[code] += 1
        if len(self.violations) < self.keep:
            self.violations.append(Violation(code, path, message))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def valid(self) -> bool:
        return self.total == 0

    def to_dict(self, max_listed: int = 200) -> dict:
        return {
            "track": self.track,
            "split": self.split,
            "submission": self.source,
            "json_member": self.member,
            "json_sha256": self.sha256,
            "form": self.form,
            "valid": self.valid,
            "violations_total": self.total,
            "violations_by_code": dict(sorted(self.counts.items())),
            "violations": [{"code": v.code, "path": v.path, "message": v.message}
                           for v in self.violations[:max_listed]],
            "warnings": self.warnings,
            "summary": self.summary,
        }

    def to_text(self, max_listed: int = 25) -> str:
        where = f"{self.source}" + (f" ({self.member})" if self.member else "")
        form = f", {self.form} form" if self.form else ""
        head = (f"{self.track} submission {where}{form}, checked against the {self.split} split: "
                + ("VALID" if self.valid else f"INVALID, {self.total} violation(s)"))
        lines = [head]
        if self.summary:
            lines.append("  " + ", ".join(f"{k}: {v}" for k, v in self.summary.items()))
        lines += [f"  {v}" for v in self.violations[:max_listed]]
        if self.total > max_listed:
            by_code = ", ".join(f"{c} {n}" for c, n in sorted(self.counts.items()))
            lines.append(f"  ... and {self.total - max_listed} more (by kind: {by_code})")
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


# ----------------------------------------------------------------------------- helpers


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value) -> bool:
    return _is_int(value) or isinstance(value, float)


def _short(value, limit: int = 80) -> str:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    text = json.dumps(value, default=str) if not isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _key(name) -> str:
    return f"[{json.dumps(name)}]"


def _type_name(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "an integer", float: "a number"}.get(type(value), "an object" if isinstance(value, dict)
                                                    else type(value).__name__)


def _check_top(obj, keys: tuple[str, ...], report: Report) -> bool:
    if not isinstance(obj, dict):
        report.add("structure", "", f"the top level must be an object with {', '.join(keys)}; got {_type_name(obj)}")
        return False
    for key in getattr(obj, "duplicates", ()):
        report.add("duplicate", "", f"top-level key {key!r} appears more than once")
    for key in keys:
        if key not in obj:
            report.add("structure", "", f"missing top-level key {key!r}")
    for key in obj:
        if key not in keys:
            report.add("structure", "", f"unknown top-level key {key!r} (expected only {', '.join(keys)})")
    return True


def _entries(value, section: str, form: str | None, report: Report):
    """``(path, name, item)`` of a ``cls``/``seg`` section in list or object form; sets report.form."""
    if isinstance(value, list):
        found = "list"
    elif isinstance(value, dict):
        found = "object"
    else:
        report.add("structure", section, f"must be a list of one-key objects or an object; got {_type_name(value)}")
        return []
    if report.form is None:
        report.form = found
    elif report.form != found:
        report.add("form", section, f"is in the {found} form but another section is in the {report.form} form")
    if form and form != found:
        report.add("form", section, f"is in the {found} form; the {form} form is required")
    out = []
    if found == "object":
        for name in getattr(value, "duplicates", ()):
            report.add("duplicate", section + _key(name), "image name appears more than once")
        for name, item in value.items():
            out.append((section + _key(name), name, item))
        return out
    for index, element in enumerate(value):
        path = f"{section}[{index}]"
        if not isinstance(element, dict) or len(element) != 1:
            shown = f"an object with {len(element)} keys" if isinstance(element, dict) else _type_name(element)
            report.add("structure", path, f"must be an object with exactly one key (the image name); got {shown}")
            continue
        for key in getattr(element, "duplicates", ()):
            report.add("duplicate", path + _key(key), "image name appears more than once in this object")
        (name, item), = element.items()
        out.append((path + _key(name), name, item))
    return out


def _check_names(entries, expected: list[str] | dict, section: str, what: str, report: Report) -> set:
    """Every expected name exactly once, nothing else; returns the names seen."""
    known = set(expected)
    seen: Counter = Counter()
    for path, name, _ in entries:
        seen[name] += 1
        if name not in known:
            report.add("unknown-name", path, f"{name!r} is not {what} of the {report.split} split")
        elif seen[name] == 2:
            report.add("duplicate", path, f"{name!r} appears more than once")
    missing = [n for n in expected if n not in seen]
    for name in missing:
        report.add("missing", section, f"no entry for {what} {name!r}")
    return set(seen)


# ----------------------------------------------------------------------------- AllInOne


def _check_cls(value, ref: AllInOneReference, form: str | None, report: Report) -> None:
    entries = _entries(value, "cls", form, report)
    _check_names(entries, ref.cls_names, "cls", "a classification test image" if ref.split == "test"
                 else "a classification image", report)
    top = ref.num_cls_classes - 1
    for path, _, label in entries:
        if not _is_int(label):
            report.add("class-id", path, f"class id must be an integer, got {_short(label)}")
        elif not 0 <= label <= top:
            report.add("class-id", path, f"class id {label} out of range 0..{top}")
    report.summary["cls"] = len(entries)


def _check_box(bbox, size, tolerance: float) -> str | None:
    if not isinstance(bbox, list) or len(bbox) != 4:
        return f"bbox must be a list of 4 numbers [x, y, w, h], got {_short(bbox)}"
    if not all(_is_number(v) for v in bbox):
        return f"bbox values must be numbers, got {_short(bbox)}"
    x, y, w, h = (float(v) for v in bbox)
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        return f"bbox has a non-finite value: {_short(bbox)}"
    if w <= 0 or h <= 0:
        return f"bbox {_short(bbox)} has a non-positive width or height"
    if size is not None:
        width, height = size
        t = tolerance
        if x < -t or y < -t or x + w > width + t or y + h > height + t:
            return (f"bbox {_short(bbox)} (x1={x + w:g}, y1={y + h:g}) lies outside its {width}x{height} image "
                    f"by more than {t:g} px")
    return None


def _check_dec(value, ref: AllInOneReference, tolerance: float, report: Report) -> None:
    if not isinstance(value, list):
        report.add("structure", "dec", f"must be a list of detections; got {_type_name(value)}")
        return
    if not value:
        report.add("structure", "dec", "is empty: the organisers' scorer (pycocotools loadRes) cannot load an "
                                       "empty result list; submit at least one detection")
    categories = set(ref.det_category_ids)
    low, high = (min(ref.det_images), max(ref.det_images)) if ref.det_images else (0, -1)
    id_text = (f"1..{len(ref.det_images)} (the line numbers of dec/test.txt)" if ref.split == "test"
               else f"one of the {len(ref.det_images)} image ids of det_{ref.split}.json ({low}..{high})")
    per_image: Counter = Counter()
    for index, det in enumerate(value):
        path = f"dec[{index}]"
        if not isinstance(det, dict):
            report.add("structure", path, f"must be an object with {', '.join(DEC_KEYS)}; got {_type_name(det)}")
            continue
        for key in getattr(det, "duplicates", ()):
            report.add("duplicate", path, f"key {key!r} appears more than once")
        missing = [k for k in DEC_KEYS if k not in det]
        extra = [k for k in det if k not in DEC_KEYS]
        if missing:
            report.add("structure", path, f"missing key(s) {', '.join(missing)}")
        if extra:
            report.add("structure", path, f"unknown key(s) {', '.join(map(repr, extra))} "
                                          f"(a detection has exactly {', '.join(DEC_KEYS)})")
        image_id = det.get("image_id")
        size = None
        if "image_id" in det:
            if not _is_int(image_id):
                report.add("image-id", path + ".image_id", f"must be an integer, got {_short(image_id)}")
            elif image_id not in ref.det_images:
                report.add("image-id", path + ".image_id", f"{image_id} is not an image id: expected {id_text}")
            else:
                size = ref.det_images[image_id]
                per_image[image_id] += 1
        if "category_id" in det:
            category = det["category_id"]
            if not _is_int(category):
                report.add("category-id", path + ".category_id", f"must be an integer, got {_short(category)}")
            elif category not in categories:
                report.add("category-id", path + ".category_id",
                           f"{category} is not a category id ({min(categories)}..{max(categories)})")
        if "bbox" in det:
            problem = _check_box(det["bbox"], size, tolerance)
            if problem:
                report.add("bbox", path + ".bbox", problem)
        if "score" in det:
            score = det["score"]
            if not _is_number(score) or not math.isfinite(float(score)):
                report.add("score", path + ".score", f"must be a finite number, got {_short(score)}")
            elif not 0.0 <= float(score) <= 1.0:
                report.add("score", path + ".score", f"{score} is outside [0, 1]")
    crowded = sum(1 for n in per_image.values() if n > COCO_MAX_DETS)
    if crowded:
        report.warnings.append(f"dec: {crowded} image(s) have more than {COCO_MAX_DETS} boxes; COCO's AP only "
                               f"counts the {COCO_MAX_DETS} highest-scoring boxes of an image")
    report.summary["dec"] = len(value)
    report.summary["dec_images"] = len(per_image)


def _check_polygons(path: str, polygons, size, report: Report) -> int:
    """Check one class's polygon list; returns the number of points seen."""
    if not isinstance(polygons, list):
        report.add("polygon", path, f"must be a list of polygons, got {_type_name(polygons)}")
        return 0
    width, height = size if size else (None, None)
    points = 0
    arrays = []
    for index, polygon in enumerate(polygons):
        where = f"{path}[{index}]"
        if isinstance(polygon, np.ndarray):  # well-formed list of [int, int] (see jsonio.parse)
            if len(polygon) < 3:
                report.add("polygon", where, f"has {len(polygon)} point(s); a polygon needs at least 3 "
                                             "(the scorer skips shorter ones)")
            arrays.append((where, polygon))
            points += len(polygon)
            continue
        if not isinstance(polygon, list):
            report.add("polygon", where, f"must be a list of [x, y] points, got {_type_name(polygon)}")
            continue
        if len(polygon) < 3:
            report.add("polygon", where, f"has {len(polygon)} point(s); a polygon needs at least 3 "
                                         "(the scorer skips shorter ones)")
            continue
        bad = next((p for p in polygon if not (isinstance(p, list) and len(p) == 2 and all(_is_int(c) for c in p))),
                   None)
        if bad is not None:
            report.add("polygon", where, f"points must be [x, y] pairs of integers, found {_short(bad)}")
            continue
        try:
            arrays.append((where, np.asarray(polygon, dtype=np.int64)))
        except OverflowError:
            report.add("polygon", where, "has a coordinate too large to be a pixel position")
            continue
        points += len(polygon)
    if size and arrays:
        stacked = np.concatenate([a for _, a in arrays if len(a)]) if any(len(a) for _, a in arrays) else None
        if stacked is not None and (stacked.min() < 0 or stacked[:, 0].max() >= width
                                    or stacked[:, 1].max() >= height):
            for where, array in arrays:
                outside = (array[:, 0] < 0) | (array[:, 0] >= width) | (array[:, 1] < 0) | (array[:, 1] >= height)
                if outside.any():
                    first = array[np.argmax(outside)].tolist()
                    report.add("polygon", where, f"{int(outside.sum())} point(s) outside the {width}x{height} "
                                                 f"image (x in 0..{width - 1}, y in 0..{height - 1}), e.g. {first}")
    return points


def _check_seg(value, ref: AllInOneReference, form: str | None, report: Report) -> None:
    entries = _entries(value, "seg", form, report)
    _check_names(entries, list(ref.seg_images), "seg", "a segmentation image key (<JPEG stem>.png)", report)
    class_keys = [str(c) for c in range(ref.num_seg_classes)]
    class_set = set(class_keys)
    points = polygons = 0
    for path, name, classes in entries:
        if not isinstance(classes, dict):
            report.add("structure", path, f"must be an object of class id -> polygons, got {_type_name(classes)}")
            continue
        for key in getattr(classes, "duplicates", ()):
            report.add("duplicate", path + _key(key), "class key appears more than once")
        missing = [k for k in class_keys if k not in classes]
        if missing:
            report.add("structure", path, f"missing class key(s) {missing[:19]}"
                                          + (f" and {len(missing) - 19} more" if len(missing) > 19 else "")
                                          + " (every class id needs a list, empty when absent)")
        size = ref.seg_images.get(name)
        for key, polys in classes.items():
            if key not in class_set:
                report.add("structure", path + _key(key),
                           f"{key!r} is not a class id (expected the strings '0'..'{ref.num_seg_classes - 1}')")
                continue
            points += _check_polygons(path + _key(key), polys, size, report)
            polygons += len(polys) if isinstance(polys, list) else 0
    report.summary["seg"] = len(entries)
    report.summary["seg_polygons"] = polygons
    report.summary["seg_points"] = points


def validate_allinone(obj, ref: AllInOneReference, form: str | None = None, box_tolerance: float = 1.0,
                      report: Report | None = None) -> Report:
    """Check a parsed AllInOne submission (see :func:`jsonio.parse`) against ``ref``."""
    report = report or Report("allinone", ref.split)
    if form not in (None, "any", "list", "object"):
        raise ValueError(f"form must be list, object or any, not {form!r}")
    form = None if form == "any" else form
    if not _check_top(obj, ("cls", "dec", "seg"), report):
        return report
    if "cls" in obj:
        _check_cls(obj["cls"], ref, form, report)
    if "dec" in obj:
        _check_dec(obj["dec"], ref, box_tolerance, report)
    if "seg" in obj:
        _check_seg(obj["seg"], ref, form, report)
    return report


# ----------------------------------------------------------------------------- retrieval


def validate_retrieval(obj, ref: RetrievalReference, top_k: int = 10, report: Report | None = None) -> Report:
    """Check a parsed retrieval submission against ``ref``."""
    report = report or Report("retrieval", ref.split)
    if not _check_top(obj, ("results",), report):
        return report
    results = obj.get("results")
    if "results" in obj and not isinstance(results, list):
        report.add("structure", "results", f"must be a list, got {_type_name(results)}")
        return report
    if results is None:
        return report
    queries = ref.queries
    source = "test_text.txt" if ref.split == "test" else f"the {ref.split} queries"
    if len(results) != len(queries):
        report.add("count", "results", f"has {len(results)} entries; {source} has {len(queries)} queries "
                                       "(one entry per query, in order)")
    gallery = set(ref.gallery)
    for index, item in enumerate(results):
        path = f"results[{index}]"
        if not isinstance(item, dict):
            report.add("structure", path, f"must be an object with text and image_names, got {_type_name(item)}")
            continue
        for key in getattr(item, "duplicates", ()):
            report.add("duplicate", path, f"key {key!r} appears more than once")
        for key in ("text", "image_names"):
            if key not in item:
                report.add("structure", path, f"missing key {key!r}")
        extra = [k for k in item if k not in ("text", "image_names")]
        if extra:
            report.add("structure", path, f"unknown key(s) {', '.join(map(repr, extra))}")
        if "text" in item:
            text = item["text"]
            if not isinstance(text, str):
                report.add("text", path + ".text", f"must be a string, got {_type_name(text)}")
            elif index < len(queries) and text != queries[index]:
                report.add("text", path + ".text", f"{_short(text)} is not query {index + 1} of {source}, "
                                                   f"{_short(queries[index])} (the scorer requires the same order)")
        if "image_names" in item:
            names = item["image_names"]
            if not isinstance(names, list):
                report.add("names", path + ".image_names",
                           f"must be a list of {top_k} names, got {_type_name(names)}")
                continue
            if len(names) != top_k:
                report.add("names", path + ".image_names", f"has {len(names)} names; exactly {top_k} are required")
            seen = set()
            for j, name in enumerate(names):
                where = f"{path}.image_names[{j}]"
                if not isinstance(name, str):
                    report.add("names", where, f"must be a string, got {_short(name)}")
                    continue
                if name not in gallery:
                    report.add("unknown-name", where, f"{name!r} is not an image of the {ref.split} split")
                if name in seen:
                    report.add("duplicate", where, f"{name!r} appears more than once in this list")
                seen.add(name)
    report.summary["results"] = len(results)
    return report


# ----------------------------------------------------------------------------- files


def _read(path: str | Path, report: Report):
    container = jsonio.read_submission(path)
    report.source = str(path)
    report.member = container.member
    for problem in container.problems:
        report.add("container", "", problem)
    if container.payload is None:
        return None
    report.sha256 = hashlib.sha256(container.payload).hexdigest()
    return parse_payload(container.payload, report)


def parse_payload(payload: bytes, report: Report):
    """Parse JSON bytes, recording why they are not (strict) JSON; None when unparseable."""
    parsed = jsonio.parse(payload)
    if parsed.error:
        report.add("json", "", parsed.error)
        return None
    if parsed.constants:
        names = sorted(set(parsed.constants))
        report.add("json", "", f"non-standard JSON constant(s) {names} ({len(parsed.constants)} occurrence(s)); "
                               "use finite numbers")
    return parsed.value


def validate_allinone_file(path: str | Path, ref: AllInOneReference, form: str | None = None,
                           box_tolerance: float = 1.0) -> tuple[Report, object]:
    """Validate a submission file; returns the report and the parsed submission (None if unreadable)."""
    report = Report("allinone", ref.split)
    obj = _read(path, report)
    if obj is not None:
        validate_allinone(obj, ref, form, box_tolerance, report)
    return report, obj


def validate_retrieval_file(path: str | Path, ref: RetrievalReference, top_k: int = 10) -> tuple[Report, object]:
    report = Report("retrieval", ref.split)
    obj = _read(path, report)
    if obj is not None:
        validate_retrieval(obj, ref, top_k, report)
    return report, obj


def write_report(report: Report, target: str | Path, max_listed: int = 200) -> None:
    from .. import atomic

    atomic.write_json(target, report.to_dict(max_listed))
