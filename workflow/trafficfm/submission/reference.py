"""What a submission is checked and scored against, read from the canonical datasets.

The organisers score the hidden labels of the test split; the local scorer scores a labelled
split (``val``) packaged the same way, and, on the demo release, the test split itself with the
generator's hidden truth (``with_truth``). Both go through these objects, so the builder, the validator
and the scorer agree on names, ids, sizes and order:

* AllInOne ``cls``: image file names of ``cls_<split>.csv`` (keys of the submission);
* ``dec``: image ids of ``det_<split>.json`` (on the test split the 1-based line in
  ``dec/test.txt``) with their sizes, and the category ids of the manifest;
* ``seg``: ``<JPEG stem>.png`` for each image of ``seg_<split>.csv``, with its size;
* retrieval: the queries in order and the gallery's image names. On the test split these are
  ``test_queries.csv`` and ``test_images.csv``; on a labelled split every row of ``<split>.csv`` is
  one query (its caption, as the organisers' ``track2/test.py`` does) and one gallery image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import pandas as pd

from ..data.canonical import Dataset
from ..data.demo import truth


def seg_key(image: str) -> str:
    """The ``seg`` key of a segmentation image: its file name with ``.png`` for the extension."""
    return PurePosixPath(image).stem + ".png"


@dataclass
class AllInOneReference:
    split: str
    cls_names: list[str]
    num_cls_classes: int
    det_images: dict[int, tuple[int, int]]  # image id -> (width, height), in id order
    det_category_ids: list[int]
    seg_images: dict[str, tuple[int, int]]  # seg key -> (width, height), in table order
    num_seg_classes: int
    ignore_index: int = 255
    # Labelled splits only (for scoring):
    cls_labels: dict[str, int] | None = None
    coco: dict | None = None
    seg_label_paths: dict[str, Path] | None = None
    seg_class_names: list[str] = field(default_factory=list)

    @property
    def labelled(self) -> bool:
        return self.cls_labels is not None

    @classmethod
    def from_dataset(cls, directory: str | Path, split: str = "test") -> "AllInOneReference":
        data = Dataset.open(directory)
        manifest = data.manifest
        cls_table = data.table(f"cls_{split}")
        names = [PurePosixPath(p).name for p in cls_table["image"]]
        labels = [int(v) for v in cls_table["label"]]
        coco = json.loads(data.coco_path(split).read_text())
        det_images = {int(im["id"]): (int(im["width"]), int(im["height"]))
                      for im in sorted(coco["images"], key=lambda im: im["id"])}
        seg_table = data.table(f"seg_{split}")
        seg_images = {seg_key(p): (int(w), int(h))
                      for p, w, h in zip(seg_table["image"], seg_table["width"], seg_table["height"])}
        labelled = bool(len(labels)) and all(v >= 0 for v in labels) and all(seg_table["label"])
        seg_names = list(manifest.get("seg_classes", []))
        return cls(
            split=split,
            cls_names=names,
            num_cls_classes=len(manifest["cls_classes"]),
            det_images=det_images,
            det_category_ids=sorted(int(c["id"]) for c in manifest["det_categories"]),
            seg_images=seg_images,
            num_seg_classes=len(seg_names),
            ignore_index=int(manifest.get("ignore_index", 255)),
            cls_labels=dict(zip(names, labels)) if labelled else None,
            coco=coco if labelled else None,
            seg_label_paths=({seg_key(p): Path(lp) for p, lp in zip(seg_table["image"], seg_table["label_path"])}
                             if labelled else None),
            seg_class_names=seg_names,
        )

    def with_truth(self, truth_dir: str | Path) -> "AllInOneReference":
        """This (test) reference labelled from the demo generator's hidden truth, to be scored as the
        organisers score the leaderboard zip. Raises ValueError when the truth is of another release."""
        labels, coco, seg_dir = truth.allinone_labels(truth_dir)
        _same(truth_dir, "classification images", set(labels), set(self.cls_names))
        _same(truth_dir, "detection image ids", {int(im["id"]) for im in coco["images"]}, set(self.det_images))
        seg_paths = {key: seg_dir / key for key in self.seg_images}
        _same(truth_dir, "segmentation label maps", {p.name for p in seg_dir.glob("*.png")}, set(seg_paths))
        return replace(self, cls_labels=labels, coco=coco, seg_label_paths=seg_paths)


def _same(truth_dir, what: str, found: set, expected: set) -> None:
    if found != expected:
        raise ValueError(f"{truth_dir}: the hidden truth's {what} are not this test split's ({len(found - expected)} "
                         f"unknown, {len(expected - found)} missing, e.g. {sorted(found ^ expected, key=str)[:3]}): "
                         "truth of another release?")


@dataclass
class RetrievalReference:
    split: str
    queries: list[str]  # texts, in the order the submission must follow
    gallery: list[str]  # image names a submission may return
    # Labelled splits only (for scoring): each query's attribute text, each image's attribute text.
    query_attributes: list[str] | None = None
    image_attributes: dict[str, str] | None = None

    @property
    def labelled(self) -> bool:
        return self.query_attributes is not None

    @classmethod
    def from_dataset(cls, directory: str | Path, split: str = "test") -> "RetrievalReference":
        data = Dataset.open(directory)
        if split == "test":
            queries = pd.read_csv(data.directory / "test_queries.csv", keep_default_na=False,
                                  dtype={"text": str})
            images = data.table("test_images")
            return cls(split, list(queries["text"]), list(images["name"]))
        table = data.table(split)
        names = [PurePosixPath(p).name for p in table["image"]]
        return cls(split, list(table["caption"]), names, list(table["attribute"]),
                   dict(zip(names, table["attribute"])))

    def with_truth(self, truth_dir: str | Path) -> "RetrievalReference":
        """This test reference labelled from the demo generator's hidden truth (see
        :meth:`AllInOneReference.with_truth`)."""
        queries, gallery = truth.retrieval_labels(truth_dir)
        if [q for q, _ in queries] != self.queries:
            raise ValueError(f"{truth_dir}: the hidden truth's queries are not this test split's: truth of another release?")
        _same(truth_dir, "gallery images", set(gallery), set(self.gallery))
        return replace(self, query_attributes=[a for _, a in queries], image_attributes=gallery)
