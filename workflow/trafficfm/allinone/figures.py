"""Report figures of the AllInOne stage: per-class results as bar charts and example validation
predictions drawn on their images (predictions in the contract's form, docs/data-contract.md)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from .. import atomic  # noqa: E402
from ..data.canonical import Dataset  # noqa: E402
from ..data.report import seg_palette  # noqa: E402

TRUTH, RIGHT, WRONG = "#2ca02c", "#1f77b4", "#d62728"


def plot_per_class(cls_csv: str | Path, det_csv: str | Path, seg_csv: str | Path, target: str | Path) -> None:
    """Three bar charts: accuracy per car model, AP@0.5 per sign category with boxes, IoU per class."""
    cls, det, seg = pd.read_csv(cls_csv), pd.read_csv(det_csv), pd.read_csv(seg_csv)
    det = det[det["gt_boxes"] > 0]
    panels = [("classification: top-1 per class", cls["name"], cls["accuracy"]),
              ("detection: AP@0.5 per category (with validation boxes)", det["name"], det["ap50"]),
              ("segmentation: IoU per class", seg["name"], seg["iou"])]
    width = max(8.0, 0.28 * max(len(names) for _, names, _ in panels))
    fig, axes = plt.subplots(3, 1, figsize=(width, 10), constrained_layout=True)
    for ax, (title, names, values) in zip(axes, panels):
        values = pd.to_numeric(values, errors="coerce").fillna(0.0).to_numpy()
        ax.bar(range(len(values)), values, color=[WRONG if v < 0.5 else RIGHT for v in values])
        ax.set_xticks(range(len(values)), [str(n) for n in names], rotation=70, fontsize=7)
        ax.set_ylim(0, 1)
        ax.axhline(values.mean() if len(values) else 0, color="k", lw=0.8, ls="--")
        ax.set_title(f"{title} (mean {values.mean() if len(values) else 0:.3f})", fontsize=10)
    atomic.save_figure(fig, target)
    plt.close(fig)


def draw_predictions(dataset_dir: str | Path, predictions_dir: str | Path, split: str, target: str | Path,
                     count: int = 4, min_score: float = 0.3) -> None:
    """One figure, one row per task, ``count`` validation images each: the predicted class against the
    truth; predicted boxes (score >= ``min_score``, blue) over the true ones (green); the image, its
    true label map and the predicted one."""
    data = Dataset.open(dataset_dir)
    pred_dir = Path(predictions_dir)
    columns = max(count, 3)
    fig, axes = plt.subplots(4, columns, figsize=(3.2 * columns, 11), squeeze=False, constrained_layout=True)
    for ax in axes.flat:
        ax.axis("off")

    cls = data.table(f"cls_{split}")
    names = list(data.manifest["cls_classes"])
    pred = dict(pd.read_csv(pred_dir / f"cls_{split}.csv").astype({"name": str}).values.tolist())
    for ax, (_, row) in zip(axes[0], cls.head(count).iterrows()):
        guess = int(pred.get(Path(row["path"]).name, -1))
        ax.imshow(Image.open(row["path"]).convert("RGB"))
        ok = guess == int(row["label"])
        ax.set_title(f"predicted {names[guess] if 0 <= guess < len(names) else guess}\n"
                     f"true {names[int(row['label'])]}", fontsize=8, color=RIGHT if ok else WRONG)

    coco = data.coco(split)
    results = json.loads((pred_dir / f"det_{split}.json").read_text())
    truth_by, pred_by = {}, {}
    for ann in coco["annotations"]:
        truth_by.setdefault(ann["image_id"], []).append(ann["bbox"])
    for det in results:
        if det["score"] >= min_score:
            pred_by.setdefault(det["image_id"], []).append(det["bbox"])
    # the images with the most signs: small signs are the point of this task
    shown = sorted((im for im in coco["images"] if im["id"] in truth_by), key=lambda im: -len(truth_by[im["id"]]))
    for ax, record in zip(axes[1], shown[:count]):
        ax.imshow(Image.open(data.resolve(record["file_name"])).convert("RGB"))
        for boxes, colour in ((truth_by.get(record["id"], []), TRUTH), (pred_by.get(record["id"], []), RIGHT)):
            for x, y, w, h in boxes:
                ax.add_patch(plt.Rectangle((x - 2, y - 2), w + 4, h + 4, fill=False, ec=colour, lw=1))
        ax.set_title(f"{len(truth_by[record['id']])} true (green), {len(pred_by.get(record['id'], []))} "
                     f"predicted (blue)", fontsize=8)

    seg = data.table(f"seg_{split}")
    palette = seg_palette(len(data.manifest["seg_classes"]))
    for row_axes, (_, row) in zip(axes[2:], seg.head(2).iterrows()):
        image = Image.open(row["path"]).convert("RGB")
        truth = palette[np.asarray(Image.open(data.resolve(row["label"])))]
        guess = palette[np.asarray(Image.open(pred_dir / f"seg_{split}" / f"{Path(row['path']).stem}.png"))]
        for ax, (picture, title) in zip(row_axes, [(image, "image"), (truth, "true labels"), (guess, "predicted")]):
            ax.imshow(picture)
            ax.set_title(title, fontsize=8)
    atomic.save_figure(fig, target)
    plt.close(fig)
