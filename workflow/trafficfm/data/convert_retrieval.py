"""Convert the retrieval release (``image$attribute$caption`` label files) to canonical tables.

Output (docs/data-contract.md): ``manifest.json``, ``{split}.csv`` for the labelled splits,
``test_images.csv`` and ``test_queries.csv``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from .. import atomic
from .classes import PEDESTRIAN_ATTRIBUTE_COUNT
from .errors import ErrorCollector
from .images import list_images
from .textfiles import numbered_lines

log = logging.getLogger(__name__)

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG"


def pedestrian_vector(attribute: str, width: int = PEDESTRIAN_ATTRIBUTE_COUNT) -> tuple[int, ...] | None:
    """The 0/1 vector of a pedestrian attribute text, or None when the text is not one."""
    parts = attribute.split(",")
    if len(parts) != width or any(p.strip() not in ("0", "1") for p in parts):
        return None
    return tuple(int(p) for p in parts)


def kind_of_test_image(name: str) -> str:
    return "vehicle" if name.startswith("vehicle_") else "pedestrian"


def _readable(path: str) -> str | None:
    """Cheap readability check at release scale (136k files): exists, non-empty, image magic."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except FileNotFoundError:
        return "image file is missing"
    except OSError as error:
        return f"image is unreadable ({error.strerror})"
    if not (head.startswith(JPEG_MAGIC) or head.startswith(PNG_MAGIC)):
        return "image is unreadable (not a JPEG or PNG file)" if head else "image file is empty"
    return None


def convert_label_file(root: Path, split: str, layout: dict, errors: ErrorCollector,
                       attribute_count: int = PEDESTRIAN_ATTRIBUTE_COUNT) -> pd.DataFrame:
    label_path = root / layout["label_file"].format(split=split)
    image_dir = root / layout["images"].format(split=split)
    shown = label_path.relative_to(root).as_posix()
    image_rel = image_dir.relative_to(root).as_posix()
    try:
        present = set(os.listdir(image_dir))
    except FileNotFoundError:
        errors.add(image_rel, "folder", "image folder is missing")
        present = set()

    rows, seen_pedestrian = [], False
    for number, line in numbered_lines(label_path):
        fields = line.split("$")
        if len(fields) != 3:
            errors.add(shown, f"line {number}",
                       f"expected 3 '$'-separated fields (image$attribute$caption), got {len(fields)}")
            continue
        name, attribute, caption = (f.strip() for f in fields)
        if not name or not attribute or not caption:
            empty = [k for k, v in zip(("image", "attribute", "caption"), (name, attribute, caption)) if not v]
            errors.add(shown, f"line {number}", f"empty field(s): {', '.join(empty)}")
            continue
        kind = "pedestrian" if pedestrian_vector(attribute, attribute_count) else "vehicle"
        if kind == "vehicle" and name.split(".")[0].isdigit() and "," in attribute:
            errors.add(shown, f"line {number}", f"pedestrian attribute must be {attribute_count} "
                                                f"comma-separated 0/1 values, got {attribute!r}")
            continue
        # The release names pedestrian images without their extension in the label file.
        file_name = name if name in present or "." in name else f"{name}.jpg"
        if file_name not in present:
            errors.add(shown, f"line {number}", f"{image_rel}/{file_name}: image file is missing")
            continue
        problem = _readable(str(image_dir / file_name))
        if problem:
            errors.add(shown, f"line {number}", f"{image_rel}/{file_name}: {problem}")
            continue
        if kind == "pedestrian":
            seen_pedestrian = True
        elif seen_pedestrian:
            log.warning("%s line %d: vehicle line after pedestrian lines (the release lists vehicles "
                        "first)", shown, number)
        rows.append((f"{image_rel}/{file_name}", name, kind, attribute, caption))
    return pd.DataFrame(rows, columns=["image", "name", "kind", "attribute", "caption"])


def convert_test(root: Path, layout: dict, errors: ErrorCollector) -> tuple[pd.DataFrame, pd.DataFrame]:
    image_dir = root / layout["test_images"]
    image_rel = image_dir.relative_to(root).as_posix()
    names = list_images(image_dir)
    if not names:
        errors.add(image_rel, "folder", "no test images found")
    images = []
    for name in names:
        problem = _readable(str(image_dir / name))
        if problem:
            errors.add(image_rel, name, problem)
            continue
        images.append((f"{image_rel}/{name}", name, kind_of_test_image(name)))
    query_path = root / layout["test_queries"]
    queries = [(index, text) for index, (_, text) in enumerate(numbered_lines(query_path))]
    if not queries:
        errors.add(query_path.relative_to(root).as_posix(), "file", "no queries")
    return (pd.DataFrame(images, columns=["image", "name", "kind"]),
            pd.DataFrame(queries, columns=["query", "text"]))


def convert_retrieval(root: str | Path, out_dir: str | Path, layout: Mapping, on_error: str) -> dict:
    """Convert the label files and the test split (``layout``: the ``data.layout.retrieval``
    settings; ``on_error``: ``data.on_error``); return the manifest (also written last)."""
    root = Path(root).resolve()
    out_dir = Path(out_dir)
    errors = ErrorCollector(on_error)
    tables = {split: convert_label_file(root, split, layout, errors) for split in layout["train_splits"]}
    test_images, test_queries = convert_test(root, layout, errors)
    errors.raise_if_failing(f"retrieval release at {root}")

    out_dir.mkdir(parents=True, exist_ok=True)
    for split, table in tables.items():
        atomic.write_csv(out_dir / f"{split}.csv", table)
    atomic.write_csv(out_dir / "test_images.csv", test_images)
    atomic.write_csv(out_dir / "test_queries.csv", test_queries)
    counts = {split: {"pairs": int(len(t)), **{k: int(v) for k, v in t["kind"].value_counts().items()},
                      "attribute_texts": int(t["attribute"].nunique())}
              for split, t in tables.items()}
    counts["test"] = {"images": int(len(test_images)), "queries": int(len(test_queries)),
                      **{k: int(v) for k, v in test_images["kind"].value_counts().items()}}
    manifest = {
        "track": "retrieval",
        "root": str(root),
        "splits": list(tables),
        "pedestrian_attributes": PEDESTRIAN_ATTRIBUTE_COUNT,
        "counts": counts,
        "skipped": errors.summary(),
    }
    atomic.write_json(out_dir / "manifest.json", manifest)
    log.info("retrieval converted: %s; %d record(s) skipped", counts, len(errors))
    return manifest
