"""A tiny canonical AllInOne dataset (docs/data-contract.md) for unit tests and smoke runs.

Classification: flat colour-coded squares; detection: small coloured squares on noise; segmentation:
horizontal bands. Seconds to write, seconds to learn; no claim to realism (the demo release is for that).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ..data.classes import BDD100K_CLASSES, TT100K_CATEGORIES

COLOURS = [(220, 40, 40), (40, 200, 40), (40, 60, 220), (220, 200, 40)]


def _write_rgb(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.ascontiguousarray(img[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 95])


def make_synthetic_allinone(out_dir: str | Path, root: str | Path, seed: int = 0, n_cls: int = 12, n_det: int = 8,
                            n_seg: int = 6, cls_classes: int = 3, det_size=(96, 128), seg_size=(64, 96),
                            det_categories: tuple[int, ...] = (0, 5)) -> Path:
    """Write images under ``root`` and the canonical tables under ``out_dir``; return ``out_dir``."""
    rng = np.random.default_rng(seed)
    out_dir, root = Path(out_dir), Path(root)
    out_dir.mkdir(parents=True, exist_ok=True)
    splits = {"train": 1.0, "val": 0.5, "test": 0.5}
    counts: dict = {"cls": {}, "det_images": {}, "det_boxes": {}, "seg": {}}
    cats = [{"id": i, "name": n, "supercategory": "traffic_sign"} for i, n in enumerate(TT100K_CATEGORIES)]
    for split, frac in splits.items():
        counts["cls"][split] = _cls_split(root, out_dir, split, max(cls_classes, int(n_cls * frac)), cls_classes, rng)
        images, boxes = _det_split(root, out_dir, split, max(2, int(n_det * frac)), det_size, det_categories, cats, rng)
        counts["det_images"][split], counts["det_boxes"][split] = images, boxes
        counts["seg"][split] = _seg_split(root, out_dir, split, max(2, int(n_seg * frac)), seg_size, rng)
    manifest = {
        "track": "allinone",
        "root": str(root.resolve()),
        "splits": {"train": ["train", "val"], "test": "test"},
        "cls_classes": [str(i) for i in range(cls_classes)],
        "det_categories": cats,
        "seg_classes": list(BDD100K_CLASSES),
        "ignore_index": 255,
        "counts": counts,
        "warnings": [],
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return out_dir


def _cls_split(root: Path, out_dir: Path, split: str, n: int, cls_classes: int, rng) -> int:
    """Flat colour-coded squares on dark noise, class = colour."""
    rows = []
    for i in range(n):
        label = i % cls_classes
        img = rng.integers(0, 60, (40, 48, 3)).astype(np.uint8)
        c = COLOURS[label % len(COLOURS)]
        x, y = int(rng.integers(2, 14)), int(rng.integers(2, 10))
        img[y : y + 24, x : x + 28] = c
        rel = f"cls/{split}/{i:04d}.jpg"
        _write_rgb(root / rel, img)
        rows.append({"image": rel, "label": label if split != "test" else -1, "width": 48, "height": 40})
    pd.DataFrame(rows).to_csv(out_dir / f"cls_{split}.csv", index=False)
    return len(rows)


def _det_split(root: Path, out_dir: Path, split: str, n: int, det_size, det_categories, cats, rng) -> tuple[int, int]:
    """Small coloured squares on noise (every fourth image without any); returns (images, boxes)."""
    images, anns = [], []
    for i in range(n):
        h, w = det_size
        img = rng.integers(60, 120, (h, w, 3)).astype(np.uint8)
        rel = f"dec/{split}/{i:04d}.jpg"
        image_id = i + 1
        k = int(rng.integers(1, 4)) if i % 4 != 3 else 0
        for _ in range(k):
            s = int(rng.integers(8, 20))
            x, y = int(rng.integers(0, w - s)), int(rng.integers(0, h - s))
            j = int(rng.integers(len(det_categories)))
            img[y : y + s, x : x + s] = COLOURS[j]
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": det_categories[j],
                         "bbox": [x, y, s, s], "area": s * s, "iscrowd": 0,
                         "segmentation": [[x, y, x + s, y, x + s, y + s, x, y + s]]})
        _write_rgb(root / rel, img)
        images.append({"id": image_id, "file_name": rel, "width": w, "height": h})
    coco = {"images": images, "categories": cats}
    if split != "test":
        coco["annotations"] = anns
    (out_dir / f"det_{split}.json").write_text(json.dumps(coco))
    return len(images), len(anns) if split != "test" else 0


def _seg_split(root: Path, out_dir: Path, split: str, n: int, seg_size, rng) -> int:
    """Horizontal bands: sky, building, road, with a strip of ignore."""
    rows = []
    palette = {10: (120, 170, 230), 2: (120, 90, 80), 0: (70, 70, 70), 255: (0, 0, 0)}
    for i in range(n):
        h, w = seg_size
        mask = np.zeros((h, w), np.uint8)
        b1, b2 = int(h * rng.uniform(0.3, 0.45)), int(h * rng.uniform(0.55, 0.7))
        mask[:b1] = 10  # sky
        mask[b1:b2] = 2  # building
        mask[b2:] = 0  # road
        mask[b2 : b2 + 2, : w // 4] = 255
        img = np.zeros((h, w, 3), np.uint8)
        for v, c in palette.items():
            img[mask == v] = c
        img = np.clip(img.astype(int) + rng.integers(-15, 15, img.shape), 0, 255).astype(np.uint8)
        rel = f"seg/images/{split}/{i:04d}.jpg"
        _write_rgb(root / rel, img)
        lab = ""
        if split != "test":
            lab = f"seg/label/{split}/{i:04d}.png"
            (root / lab).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / lab), mask)
        rows.append({"image": rel, "label": lab, "width": w, "height": h})
    pd.DataFrame(rows).to_csv(out_dir / f"seg_{split}.csv", index=False)
    return len(rows)
