"""Datasets of the three tasks, read from the canonical AllInOne dataset (docs/data-contract.md),
and the step-indexed sampler that makes the data stream a pure function of (seed, step).

A training item is addressed as ``(index, seed)``; the seed (a tuple of ints) seeds the sample's
augmentation generator. :class:`StepBatchSampler` yields, for each step, this process's share of
the global batch, so a run resumed at step *k*, or split over several processes, sees exactly the
samples and augmentations that an uninterrupted single-process run sees.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset
from torchvision.io import ImageReadMode, decode_jpeg
from torch.utils.data import Sampler

from ..data.canonical import Dataset
from . import transforms as T
from .refine import sample_training_boxes

TASK_IDS = {"cls": 1, "det": 2, "seg": 3}


def read_rgb(path: str | Path) -> np.ndarray:
    """HWC uint8 RGB. JPEGs go through torchvision.io.decode_jpeg, which decodes to RGB: the same
    pixels as OpenCV here without its BGR -> RGB copy, which on a 2048 px image costs about as much
    as the decoding (`python -m trafficfm.cost` measures both per CPU core). Pixels as stored: an
    EXIF orientation tag is not applied (annotation sizes and label maps refer to the stored pixels,
    and every other reader here, PIL, sees them so too)."""
    data = Path(path).read_bytes()
    if data[:2] == b"\xff\xd8":
        try:
            raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
            img = decode_jpeg(raw, mode=ImageReadMode.RGB, apply_exif_orientation=False)
            return img.permute(1, 2, 0).contiguous().numpy()
        except RuntimeError:
            pass  # a JPEG torchvision rejects (e.g. CMYK): OpenCV below
    img = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None:
        raise OSError(f"{path}: cannot read image")
    return np.ascontiguousarray(img[:, :, ::-1])


def read_mask(path: str | Path) -> np.ndarray:
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None or mask.ndim != 2:
        raise OSError(f"{path}: cannot read a single-channel label map")
    return mask.astype(np.uint8)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """HWC uint8 -> CHW uint8 tensor."""
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)


def _split_item(item):
    if isinstance(item, tuple):
        return item[0], np.random.default_rng(list(item[1]))
    return item, np.random.default_rng(item)


class ClsDataset(TorchDataset):
    def __init__(self, data: Dataset, split: str, size: int, train: bool, aug: Mapping | None = None):
        frame = data.table(f"cls_{split}")
        self.paths = list(frame["path"])
        self.labels = [int(v) for v in frame["label"]]
        self.names = [Path(p).name for p in frame["image"]]
        self.size, self.train, self.aug = int(size), train, aug

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item):
        idx, rng = _split_item(item)
        img = read_rgb(self.paths[idx])
        if self.train:
            img = T.cls_train(
                img, self.size, rng, scale=tuple(self.aug["scale"]), hflip=self.aug["hflip"], jitter=self.aug["jitter"],
            )
        else:
            img = T.cls_eval(img, self.size)
        return to_tensor(img), self.labels[idx]


class DetDataset(TorchDataset):
    """Training crops at native scale (see :func:`transforms.det_train`); ``image(i)`` gives whole
    images for inference."""

    def __init__(self, data: Dataset, split: str, crop: int, train: bool, aug: Mapping | None = None,
                 refine_patches: int = 0):
        coco = data.coco(split)
        self.category_ids = [int(c["id"]) for c in data.manifest["det_categories"]]
        label_of = {cid: i for i, cid in enumerate(self.category_ids)}
        self.images = coco["images"]
        self.paths = [str(data.resolve(im["file_name"])) for im in self.images]
        boxes = defaultdict(list)
        labels = defaultdict(list)
        for a in coco.get("annotations", []):
            x, y, w, h = a["bbox"]
            boxes[a["image_id"]].append([x, y, x + w, y + h])
            labels[a["image_id"]].append(label_of[int(a["category_id"])])
        self.boxes = [np.asarray(boxes[im["id"]], dtype=np.float32).reshape(-1, 4) for im in self.images]
        self.labels = [np.asarray(labels[im["id"]], dtype=np.int64) for im in self.images]
        self.crop, self.train, self.aug = int(crop), train, aug
        self.refine_patches = int(refine_patches)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, item):
        idx, rng = _split_item(item)
        img = read_rgb(self.paths[idx])
        img, boxes, labels = T.det_train(
            img, self.boxes[idx], self.labels[idx], self.crop, rng,
            positive_prob=self.aug["positive_prob"], scale=tuple(self.aug["scale"]),
            hflip=self.aug["hflip"], jitter=self.aug["jitter"],
        )
        target = {"boxes": torch.from_numpy(boxes), "labels": torch.from_numpy(labels)}
        if self.refine_patches:
            rb, rl = sample_training_boxes(boxes, labels, self.crop, self.refine_patches, len(self.category_ids), rng)
            target["refine_boxes"], target["refine_labels"] = torch.from_numpy(rb), torch.from_numpy(rl)
        return to_tensor(img), target


class SegDataset(TorchDataset):
    def __init__(self, data: Dataset, split: str, crop_hw, train: bool, aug: Mapping | None = None):
        frame = data.table(f"seg_{split}")
        self.paths = list(frame["path"])
        self.label_paths = list(frame["label_path"]) if "label_path" in frame else [""] * len(frame)
        self.names = [Path(p).name for p in frame["image"]]
        self.crop_hw = tuple(int(v) for v in crop_hw)
        self.train, self.aug = train, aug

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item):
        idx, rng = _split_item(item)
        img = read_rgb(self.paths[idx])
        mask = read_mask(self.label_paths[idx])
        img, mask = T.seg_train(
            img, mask, self.crop_hw, rng, scale=tuple(self.aug["scale"]),
            hflip=self.aug["hflip"], jitter=self.aug["jitter"],
        )
        return to_tensor(img), torch.from_numpy(mask.astype(np.int64))


def seg_class_weights(dataset: "SegDataset", num_classes: int, power: float, max_images: int = 500,
                      clip: tuple[float, float] = (0.1, 10.0)) -> np.ndarray:
    """Loss weights from the training label maps' pixel frequencies: ``(median / freq) ** power``
    (0 = uniform). mIoU weighs every class equally, so rare thin classes (poles, signs, riders) need
    a louder voice than their pixel count gives them. Reads at most ``max_images`` evenly spaced maps."""
    if power == 0:
        return np.ones(num_classes, dtype=np.float32)
    idx = np.linspace(0, len(dataset.label_paths) - 1, min(max_images, len(dataset.label_paths))).round().astype(int)
    counts = np.zeros(256, dtype=np.int64)
    for i in sorted(set(idx.tolist())):
        counts += np.bincount(read_mask(dataset.label_paths[i]).ravel(), minlength=256)
    freq = counts[:num_classes].astype(np.float64)
    present = freq > 0
    if not present.any():
        return np.ones(num_classes, dtype=np.float32)
    freq = freq / freq.sum()
    median = np.median(freq[present])
    w = np.where(present, (median / np.maximum(freq, 1e-12)) ** power, 1.0)
    return np.clip(w, *clip).astype(np.float32)


def label_counts(datasets: dict, num_classes: dict[str, int]) -> dict[str, np.ndarray]:
    """Training label counts of the classifier heads: ``cls`` per class, ``refine`` per sign
    category plus background (last; as many as signs, since half the refinement patches are
    background)."""
    cls = np.bincount(np.asarray(datasets["cls"].labels, dtype=np.int64), minlength=num_classes["cls"])
    det = np.bincount(np.concatenate([np.zeros(0, np.int64)] + list(datasets["det"].labels)),
                      minlength=num_classes["det"])
    return {"cls": cls, "refine": np.append(det, max(1, int(det.sum())))}


def collate_cls(batch):
    return torch.stack([b[0] for b in batch]), torch.tensor([b[1] for b in batch], dtype=torch.long)


def collate_det(batch):
    return torch.stack([b[0] for b in batch]), [b[1] for b in batch]


def collate_seg(batch):
    return torch.stack([b[0] for b in batch]), torch.stack([b[1] for b in batch])


COLLATE = {"cls": collate_cls, "det": collate_det, "seg": collate_seg}


class StepBatchSampler(Sampler):
    """For steps ``start..stop-1``: this process's slice of the global batch of each step.

    The stream of indices is a sequence of seeded permutations of the dataset (one per epoch); step
    *s* takes positions ``s*B .. s*B+B-1`` of it. Each index comes with its augmentation seed
    ``(seed, task, s, slot)``. Process *r* of *W* takes slots ``r*B/W .. (r+1)*B/W - 1``.
    """

    def __init__(self, n: int, global_batch: int, seed: int, task: str, start: int, stop: int,
                 rank: int = 0, world_size: int = 1):
        if n <= 0:
            raise ValueError(f"{task}: the training split is empty")
        if global_batch % world_size:
            raise ValueError(f"{task}: batch size {global_batch} is not divisible by {world_size} processes")
        self.n, self.batch, self.seed, self.task_id = n, global_batch, seed, TASK_IDS[task]
        self.start, self.stop, self.rank, self.world = start, stop, rank, world_size
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) >= 2:
                del self._perms[min(self._perms)]
            self._perms[epoch] = np.random.default_rng([self.seed, self.task_id, epoch]).permutation(self.n)
        return self._perms[epoch]

    def global_batch(self, step: int) -> list[tuple[int, tuple[int, ...]]]:
        out = []
        for slot in range(self.batch):
            pos = step * self.batch + slot
            out.append((int(self._perm(pos // self.n)[pos % self.n]), (self.seed, self.task_id, step, slot)))
        return out

    def __iter__(self):
        local = self.batch // self.world
        for step in range(self.start, self.stop):
            yield self.global_batch(step)[self.rank * local : (self.rank + 1) * local]

    def __len__(self) -> int:
        return self.stop - self.start
