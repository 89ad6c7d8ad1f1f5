"""Readers of the canonical datasets (see docs/data-contract.md).

The converters write these forms and every later stage reads them through this module, so the
resolution of relative paths against the manifest's root lives in exactly one place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class Dataset:
    """A converted dataset directory (``results/data/allinone`` or ``results/data/retrieval``)."""

    directory: Path
    manifest: dict

    @classmethod
    def open(cls, directory: str | Path) -> "Dataset":
        directory = Path(directory)
        manifest_path = directory / "manifest.json"
        if not manifest_path.exists():
            raise FileNotFoundError(f"{manifest_path}: no manifest; run the conversion rule first")
        return cls(directory, json.loads(manifest_path.read_text()))

    @property
    def root(self) -> Path:
        return Path(self.manifest["root"])

    def resolve(self, relative: str) -> Path:
        return self.root / relative

    def table(self, name: str) -> pd.DataFrame:
        """Read ``<name>.csv`` and add absolute ``path`` (and ``label_path`` for segmentation)."""
        frame = pd.read_csv(self.directory / f"{name}.csv", keep_default_na=False, dtype={"name": str})
        root = str(self.root)
        if "image" in frame:
            frame["path"] = [f"{root}/{p}" for p in frame["image"]]
        if name.startswith("seg_") and "label" in frame:
            frame["label_path"] = [f"{root}/{p}" if p else "" for p in frame["label"]]
        return frame

    def coco_path(self, split: str) -> Path:
        return self.directory / f"det_{split}.json"

    def coco(self, split: str) -> dict:
        return json.loads(self.coco_path(split).read_text())
