"""Data report: counts per split and class, image sizes, example images with boxes and masks drawn."""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from .. import atomic  # noqa: E402
from .canonical import Dataset  # noqa: E402

log = logging.getLogger(__name__)


def seg_palette(num_classes: int) -> np.ndarray:
    """A fixed colour per class (Cityscapes-like order of hues), black for ignore."""
    rng = np.random.default_rng(7)
    palette = np.zeros((256, 3), np.uint8)
    palette[:num_classes] = rng.integers(40, 255, (num_classes, 3))
    return palette


def collect_counts(allinone: Dataset, retrieval: Dataset) -> dict:
    train_splits = allinone.manifest["splits"]["train"]
    test_split = allinone.manifest["splits"]["test"]
    counts: dict = {"cls": {}, "det": {}, "seg": {}, "retrieval": {}}
    for split in [*train_splits, test_split]:
        cls = allinone.table(f"cls_{split}")
        coco = allinone.coco(split)
        seg = allinone.table(f"seg_{split}")
        names = {c["id"]: c["name"] for c in coco["categories"]}
        counts["cls"][split] = {
            "images": len(cls),
            "per_class": {str(k): int(v) for k, v in sorted(Counter(cls["label"]).items()) if k >= 0},
        }
        counts["det"][split] = {
            "images": len(coco["images"]),
            "boxes": len(coco["annotations"]),
            "images_without_boxes": len({i["id"] for i in coco["images"]}
                                        - {a["image_id"] for a in coco["annotations"]}),
            "per_category": {names[k]: v for k, v in
                             sorted(Counter(a["category_id"] for a in coco["annotations"]).items())},
            "box_side_px": _quantiles([max(a["bbox"][2], a["bbox"][3]) for a in coco["annotations"]]),
        }
        counts["seg"][split] = {"images": len(seg)}
    for split in retrieval.manifest["splits"]:
        table = retrieval.table(split)
        per_text = table.groupby("attribute").size()
        counts["retrieval"][split] = {
            "pairs": len(table),
            "per_kind": {k: int(v) for k, v in table["kind"].value_counts().items()},
            "attribute_texts": int(per_text.size),
            "images_per_attribute_text": _quantiles(per_text.tolist()),
        }
    counts["retrieval"]["test"] = retrieval.manifest["counts"]["test"]
    return counts


def _quantiles(values) -> dict:
    if not len(values):
        return {}
    q = np.quantile(np.asarray(values, float), [0, 0.25, 0.5, 0.75, 1])
    return dict(zip(("min", "q25", "median", "q75", "max"), (round(float(v), 1) for v in q)))


def plot_counts(counts: dict, target: Path) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(13, 8))
    splits = list(counts["cls"])
    for split in splits:
        per = counts["cls"][split]["per_class"]
        axes[0, 0].plot([int(k) for k in per], list(per.values()), marker="o", ms=3, label=split)
    axes[0, 0].set(title="classification: images per class", xlabel="class id", ylabel="images")
    used = sorted({k for s in splits for k in counts["det"][s]["per_category"]})
    for offset, split in enumerate(splits):
        per = counts["det"][split]["per_category"]
        if per:
            xs = [used.index(k) + 0.3 * offset for k in per]
            axes[0, 1].bar(xs, list(per.values()), width=0.3, label=split)
    axes[0, 1].set_xticks(range(len(used)), used, rotation=60, fontsize=7)
    axes[0, 1].set(title="detection: boxes per category", ylabel="boxes")
    for split in splits:
        axes[1, 0].bar(split, counts["seg"][split]["images"])
    axes[1, 0].set(title="segmentation: images per split")
    retrieval = {s: v for s, v in counts["retrieval"].items() if "per_kind" in v}
    for index, (split, value) in enumerate(retrieval.items()):
        bottom = 0
        for kind, n in sorted(value["per_kind"].items()):
            axes[1, 1].bar(index, n, bottom=bottom, label=f"{split} {kind}")
            bottom += n
    axes[1, 1].set_xticks(range(len(retrieval)), list(retrieval))
    axes[1, 1].set(title="retrieval: pairs per split and kind")
    for ax in axes.flat:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic.atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def plot_sizes(allinone: Dataset, retrieval: Dataset, target: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    split = allinone.manifest["splits"]["train"][0]
    for ax, (title, frame) in zip(axes[:2], (("classification", allinone.table(f"cls_{split}")),
                                               ("segmentation", allinone.table(f"seg_{split}")))):
        ax.scatter(frame["width"], frame["height"], s=6, alpha=0.5)
        ax.set(title=f"{title} image sizes ({split})", xlabel="width", ylabel="height")
    coco = allinone.coco(split)
    sides = [max(a["bbox"][2], a["bbox"][3]) for a in coco["annotations"]]
    axes[2].hist(sides, bins=np.geomspace(max(min(sides, default=1), 1), max(sides, default=2) + 1, 30))
    axes[2].set_xscale("log")
    axes[2].set(title=f"detection: box side in pixels ({split})", xlabel="max(w, h) px", ylabel="boxes")
    fig.tight_layout()
    with atomic.atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def draw_examples(allinone: Dataset, retrieval: Dataset, out_dir: Path, count: int) -> list[str]:
    """A few validation images per task with their annotations drawn, as JPEG files."""
    tmp_dir = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)
    split = allinone.manifest["splits"]["train"][-1]
    written = []

    cls = allinone.table(f"cls_{split}")
    for i, row in cls.head(count).iterrows():
        image = Image.open(row["path"]).convert("RGB")
        ImageDraw.Draw(image).text((4, 4), f"class {row['label']}", fill=(255, 255, 0))
        image.save(tmp_dir / f"cls_{i}.jpg", quality=90)
        written.append(f"cls_{i}.jpg")

    coco = allinone.coco(split)
    names = {c["id"]: c["name"] for c in coco["categories"]}
    by_image: dict[int, list] = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    for i, record in enumerate([im for im in coco["images"] if im["id"] in by_image][:count]):
        image = Image.open(allinone.resolve(record["file_name"])).convert("RGB")
        draw = ImageDraw.Draw(image)
        for ann in by_image[record["id"]]:
            x, y, w, h = ann["bbox"]
            draw.rectangle([x - 2, y - 2, x + w + 2, y + h + 2], outline=(0, 255, 0), width=2)
            draw.text((x, max(y - 12, 0)), names[ann["category_id"]], fill=(0, 255, 0))
        image.save(tmp_dir / f"det_{i}.jpg", quality=90)
        written.append(f"det_{i}.jpg")

    seg = allinone.table(f"seg_{split}")
    palette = seg_palette(len(allinone.manifest["seg_classes"]))
    for i, row in seg.head(count).iterrows():
        image = np.asarray(Image.open(row["path"]).convert("RGB"))
        label = np.asarray(Image.open(row["label_path"]))
        overlay = (0.5 * image + 0.5 * palette[label]).astype(np.uint8)
        Image.fromarray(np.concatenate([image, overlay], axis=1)).save(tmp_dir / f"seg_{i}.jpg", quality=90)
        written.append(f"seg_{i}.jpg")

    pairs = retrieval.table(retrieval.manifest["splits"][-1])
    picks = pairs.groupby("kind").head(count)
    for i, row in picks.reset_index(drop=True).iterrows():
        crop = Image.open(row["path"]).convert("RGB")
        crop.thumbnail((160, 160))
        canvas = Image.new("RGB", (crop.width + 420, max(crop.height, 60)), (255, 255, 255))
        canvas.paste(crop, (0, 0))
        words, lines = row["caption"].split(), [""]
        for word in words:
            if len(lines[-1]) + len(word) > 60:
                lines.append("")
            lines[-1] += word + " "
        ImageDraw.Draw(canvas).multiline_text((crop.width + 6, 4), "\n".join(lines[:10]), fill=(0, 0, 0))
        canvas.save(tmp_dir / f"retrieval_{i}.jpg", quality=90)
        written.append(f"retrieval_{i}.jpg")

    shutil.rmtree(out_dir, ignore_errors=True)
    tmp_dir.rename(out_dir)
    return written


def write_data_report(allinone_dir: str | Path, retrieval_dir: str | Path, summary_path: str | Path,
                      counts_png: str | Path, sizes_png: str | Path, examples_dir: str | Path,
                      examples: int = 4) -> dict:
    allinone, retrieval = Dataset.open(allinone_dir), Dataset.open(retrieval_dir)
    counts = collect_counts(allinone, retrieval)
    plot_counts(counts, Path(counts_png))
    plot_sizes(allinone, retrieval, Path(sizes_png))
    counts["examples"] = draw_examples(allinone, retrieval, Path(examples_dir), examples)
    counts["skipped"] = {"allinone": allinone.manifest["skipped"], "retrieval": retrieval.manifest["skipped"]}
    atomic.write_json(summary_path, counts)
    log.info("data report written: %s", json.dumps({k: counts[k] for k in ("cls", "seg")}))
    return counts
