"""Synthetic canonical datasets and predictions for the submission tests (and a check of them).

The canonical files are written directly in the contract's form (docs/data-contract.md), so these
tests do not depend on the converters or on any trained model: only on the documented contract.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from trafficfm.data.canonical import Dataset

NUM_SEG = 19
NUM_DET = 45


def blobby_label_map(width: int, height: int, rng: np.random.Generator, num_classes: int = NUM_SEG,
                     blobs: int = 12, all_classes: bool = False) -> np.ndarray:
    """Bands of road/building/sky, ellipses of random classes (with holes), thin poles, lone pixels."""
    label = np.zeros((height, width), np.uint8)
    label[: height // 3] = 10
    label[height // 3: height // 2] = 2
    classes = list(range(num_classes)) if all_classes else []
    for i in range(max(blobs, len(classes))):
        c = classes[i] if i < len(classes) else int(rng.integers(0, num_classes))
        center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(2, max(3, width // 4))), int(rng.integers(2, max(3, height // 4))))
        cv2.ellipse(label, center, axes, int(rng.integers(0, 180)), 0, 360, c, -1)
        if axes[0] > 6 and axes[1] > 6 and rng.random() < 0.5:  # a hole with an island in it
            other = int(rng.integers(0, num_classes))
            cv2.ellipse(label, center, (axes[0] // 2, axes[1] // 2), 0, 0, 360, other, -1)
            label[center[1] % height, center[0] % width] = c
    for _ in range(3):  # one-pixel-wide poles and lone pixels
        x = int(rng.integers(0, width))
        label[height // 4: height // 2, x] = 5
        label[int(rng.integers(0, height)), int(rng.integers(0, width))] = 7
    return label


def write_allinone_dataset(directory: Path, split: str = "test", *, num_cls_classes: int = 5, n_cls: int = 6,
                           det_sizes=((120, 90), (200, 100), (64, 64)), seg_sizes=((48, 32), (40, 30), (52, 36)),
                           labelled: bool = False, seed: int = 0, all_seg_classes: bool = False) -> dict:
    """Write a canonical AllInOne split; return the ground truth (labels, boxes, label maps)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    root = directory / "release"
    rng = np.random.default_rng(seed)
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {
        "track": "allinone", "root": str(root.resolve()),
        "cls_classes": [str(i) for i in range(num_cls_classes)],
        "det_categories": [{"id": i, "name": f"c{i}", "supercategory": "traffic_sign"} for i in range(NUM_DET)],
        "seg_classes": [f"s{i}" for i in range(NUM_SEG)], "ignore_index": 255, "counts": {}, "skipped": {},
    }
    manifest_path.write_text(json.dumps(manifest))
    base = "track1_test_data" if split == "test" else "track1_train_data"

    cls_names = [f"{i:05d}.jpg" for i in range(1, n_cls + 1)]
    cls_labels = [int(rng.integers(0, num_cls_classes)) if labelled else -1 for _ in cls_names]
    pd.DataFrame({"image": [f"{base}/cls/{split}/{n}" for n in cls_names], "label": cls_labels,
                  "width": 50, "height": 40}).to_csv(directory / f"cls_{split}.csv", index=False)

    images, annotations = [], []
    for index, (w, h) in enumerate(det_sizes, start=1):
        images.append({"id": index, "file_name": f"{base}/dec/{split}/t{index}.jpg", "width": w, "height": h})
        if labelled:
            for k in range(index):
                box = [5.0 + 20 * k, 6.0, 12.0, 10.0]
                annotations.append({"id": len(annotations) + 1, "image_id": index, "category_id": 3 * k + 1,
                                    "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
    coco = {"images": images, "annotations": annotations, "categories": manifest["det_categories"]}
    (directory / f"det_{split}.json").write_text(json.dumps(coco))

    seg_rows, maps = [], {}
    for index, (w, h) in enumerate(seg_sizes):
        stem = f"{index + 54:05d}"
        label_rel = ""
        label = blobby_label_map(w, h, rng, all_classes=all_seg_classes)
        if labelled:
            truth = label.copy()
            truth[0, :] = 255  # an ignored row, as real labels have
            label_rel = f"{base}/seg/label/{split}/{stem}.png"
            (root / label_rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(truth).save(root / label_rel)
        maps[f"{stem}.png"] = label
        seg_rows.append((f"{base}/seg/images/{split}/{stem}.jpg", label_rel, w, h))
    pd.DataFrame(seg_rows, columns=["image", "label", "width", "height"]).to_csv(
        directory / f"seg_{split}.csv", index=False)
    return {"cls": dict(zip(cls_names, cls_labels)), "coco": coco, "maps": maps}


def write_allinone_predictions(directory: Path, truth: dict, split: str = "test", *, cls_wrong: int = 0,
                               det_boxes: list[dict] | None = None) -> dict:
    """Predictions in the contract's form: perfect (the truth itself), unless told otherwise."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    names = list(truth["cls"])
    labels = [max(v, 0) for v in truth["cls"].values()]
    for i in range(cls_wrong):
        labels[i] = (labels[i] + 1) % 5
    pd.DataFrame({"name": names, "label": labels}).to_csv(directory / f"cls_{split}.csv", index=False)
    if det_boxes is None:
        det_boxes = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
                     for a in truth["coco"]["annotations"]]
        if not det_boxes:  # an unlabelled split: one plausible box per image
            det_boxes = [{"image_id": im["id"], "category_id": 1, "bbox": [1.0, 2.0, 10.0, 8.0], "score": 0.5}
                         for im in truth["coco"]["images"]]
    (directory / f"det_{split}.json").write_text(json.dumps(det_boxes))
    seg_dir = directory / f"seg_{split}"
    seg_dir.mkdir(exist_ok=True)
    for key, label in truth["maps"].items():
        Image.fromarray(label).save(seg_dir / key)
    return {"cls": directory / f"cls_{split}.csv", "det": directory / f"det_{split}.json", "seg": seg_dir}


def write_retrieval_dataset(directory: Path, *, n_test: int = 30, n_queries: int = 7, n_val: int = 24) -> dict:
    """A canonical retrieval dataset: test images and queries, and a labelled val split."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "manifest.json").write_text(json.dumps({
        "track": "retrieval", "root": str((directory / "release").resolve()), "counts": {},
        "pedestrian_attributes": 21, "skipped": {}}))
    half = n_test // 2
    names = [f"vehicle_{i:07d}.jpg" for i in range(half)] + [f"{i:06d}.jpg" for i in range(n_test - half)]
    pd.DataFrame({"image": [f"test/test_images/{n}" for n in names], "name": names,
                  "kind": ["vehicle" if n.startswith("vehicle_") else "pedestrian" for n in names]}
                 ).to_csv(directory / "test_images.csv", index=False)
    colours = ["red", "grey", "white", "blue"] * 4
    texts = [f"This is a {c} car, isn't it? \"{i}\"" for i, c in enumerate(colours)][:n_queries]
    pd.DataFrame({"query": range(len(texts)), "text": texts}).to_csv(directory / "test_queries.csv", index=False)
    vehicles = ["A white Audi.", "A red Audi.", "A grey Chery Sedan."]
    ped = ["1,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0", "1,0,1,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0",
           "0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1"]
    rows = []
    for i in range(n_val):
        attribute = vehicles[i % 3] if i < n_val // 2 else ped[i % 3]
        name = f"v{i:04d}.jpg" if i < n_val // 2 else f"{i:06d}.jpg"
        rows.append((f"val/val_images/{name}", name if i < n_val // 2 else name[:-4],
                     "vehicle" if i < n_val // 2 else "pedestrian", attribute, f"Caption {i}, with a comma."))
    pd.DataFrame(rows, columns=["image", "name", "kind", "attribute", "caption"]).to_csv(
        directory / "val.csv", index=False)
    return {"test_names": names, "queries": texts, "val": rows}


def write_rankings(path: Path, texts: list[str], names: list[str], k: int = 10, rotate: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for q, text in enumerate(texts):
        for r in range(k):
            rows.append((q, text, r + 1, names[(q + r) % len(names)] if rotate else names[r]))
    pd.DataFrame(rows, columns=["query", "text", "rank", "name"]).to_csv(path, index=False)
    return path


def test_synthetic_dataset_reads_through_the_canonical_reader(tmp_path):
    truth = write_allinone_dataset(tmp_path, "val", labelled=True)
    data = Dataset.open(tmp_path)
    assert len(data.table("cls_val")) == 6
    assert all(Path(p).exists() for p in data.table("seg_val")["label_path"])
    assert len(truth["maps"]) == 3
    write_retrieval_dataset(tmp_path / "r")
    assert list(Dataset.open(tmp_path / "r").table("test_images")["name"])[-1] == "000014.jpg"
