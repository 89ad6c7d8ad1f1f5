"""Datasets and the attribute-grouped batch sampler for retrieval fine-tuning and evaluation.

Images are decoded with PIL, squashed to a square of ``image_size`` (the organisers' baseline
resizes to 224 x 224 the same way) and returned as uint8 CHW tensors; the float conversion and
normalisation happen on the whole batch on the training device (:func:`to_model_input`), which
keeps worker-to-main transfers 4x smaller.

Training augmentation is mild and never touches colour (colour is an attribute): a random crop
of at least ``scale_min`` of the area, optionally a horizontal flip. It is seeded per
(seed, epoch, sample), so a resumed run draws exactly what an uninterrupted one would, whatever
the number of loader workers.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from ..data.canonical import Dataset as CanonicalDataset


def load_pairs(dataset_dir, split: str) -> pd.DataFrame:
    """The split's pair table (``image``, ``name``, ``kind``, ``attribute``, ``caption``, ``path``)."""
    return CanonicalDataset.open(dataset_dir).table(split)


def load_image(path: str, size: int, rng: np.random.Generator | None = None, scale_min: float = 1.0,
               hflip: bool = False) -> torch.Tensor:
    with Image.open(path) as image:
        image = image.convert("RGB")
        width, height = image.size
        box = (0, 0, width, height)
        if rng is not None and scale_min < 1.0:
            scale = rng.uniform(scale_min, 1.0)
            crop_w = max(1, int(round(width * math.sqrt(scale))))
            crop_h = max(1, int(round(height * math.sqrt(scale))))
            x0 = int(rng.integers(0, width - crop_w + 1))
            y0 = int(rng.integers(0, height - crop_h + 1))
            box = (x0, y0, x0 + crop_w, y0 + crop_h)
        image = image.resize((size, size), Image.BILINEAR, box=box)
        if rng is not None and hflip and rng.random() < 0.5:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def to_model_input(images: torch.Tensor, mean: Sequence[float], std: Sequence[float],
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (B, 3, H, W) -> normalised float on ``device`` (channels-last)."""
    images = images.to(device, non_blocking=True).float().div_(255.0)
    mean_t = torch.tensor(mean, device=images.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=images.device).view(1, 3, 1, 1)
    images = images.sub_(mean_t).div_(std_t)
    return images.contiguous(memory_format=torch.channels_last)


class ImageFolderDataset(Dataset):
    """Images by path, for encoding (no augmentation)."""

    def __init__(self, paths: Sequence[str], image_size: int):
        self.paths = list(paths)
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        return load_image(self.paths[index], self.image_size), index


class PairDataset(Dataset):
    """(image, caption, attribute id) training pairs with seeded per-sample augmentation."""

    def __init__(self, frame: pd.DataFrame, attribute_ids: torch.Tensor, image_size: int, seed: int = 0,
                 augment: dict | None = None):
        self.paths = frame["path"].tolist()
        self.captions = frame["caption"].tolist()
        self.attribute_ids = attribute_ids
        self.image_size = image_size
        self.seed = seed
        augment = augment or {}
        self.scale_min = float(augment.get("scale_min", 1.0))
        self.hflip = bool(augment.get("hflip", False))
        self.epoch = 0
        self.skip_images = False  # True once every image's features are cached by the model

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        if self.skip_images:
            return torch.zeros(0, dtype=torch.uint8), self.captions[index], int(self.attribute_ids[index]), index
        rng = np.random.default_rng([self.seed, self.epoch, index])
        image = load_image(self.paths[index], self.image_size, rng, self.scale_min, self.hflip)
        return image, self.captions[index], int(self.attribute_ids[index]), index

    @property
    def augmenting(self) -> bool:
        return self.scale_min < 1.0 or self.hflip


def collate_pairs(items):
    images, captions, attributes, indices = zip(*items)
    return torch.stack(images), list(captions), torch.tensor(attributes, dtype=torch.long), list(indices)


class AttributeGroupBatchSampler(Sampler[list[int]]):
    """Batches that hold several images of the same attribute text.

    Each epoch: the images of every attribute text are shuffled and cut into chunks of
    ``per_attribute``; the chunks are shuffled and laid end to end, and the sequence is cut into
    batches of ``batch_size``. Every pair is seen once per epoch; a batch holds about
    ``batch_size / per_attribute`` attribute texts with up to ``per_attribute`` images each, so the
    multi-positive loss sees real positives beyond the diagonal.

    Distributed: rank ``r`` of ``w`` takes batches ``r, r + w, ...`` (the count is cut to a multiple
    of ``w`` so every rank runs the same number of steps). ``set_epoch`` and ``start_batch``
    (for resuming mid-epoch) make the order a pure function of (seed, epoch).
    """

    def __init__(self, attribute_ids: Sequence[int], batch_size: int, per_attribute: int = 4, seed: int = 0,
                 drop_last: bool = True, rank: int = 0, world_size: int = 1):
        if batch_size < 1 or per_attribute < 1:
            raise ValueError("batch_size and per_attribute must be positive")
        groups: dict[int, list[int]] = defaultdict(list)
        for index, attribute in enumerate(np.asarray(attribute_ids).tolist()):
            groups[attribute].append(index)
        self.groups = [np.asarray(members) for _, members in sorted(groups.items())]
        self.size = len(attribute_ids)
        self.batch_size = batch_size
        self.per_attribute = per_attribute
        self.seed = seed
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch = epoch
        self.start_batch = start_batch

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, epoch, 7919])
        chunks = []
        for members in self.groups:
            shuffled = rng.permutation(members)
            chunks.extend(shuffled[i:i + self.per_attribute] for i in range(0, len(shuffled), self.per_attribute))
        order = rng.permutation(len(chunks))
        flat = np.concatenate([chunks[i] for i in order]) if chunks else np.zeros(0, dtype=int)
        batches = [flat[i:i + self.batch_size].tolist() for i in range(0, len(flat), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size and len(batches) > 1:
            batches.pop()
        usable = len(batches) - len(batches) % self.world_size if len(batches) >= self.world_size else len(batches)
        return batches[:usable][self.rank::self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.epoch_batches(self.epoch)[self.start_batch:]

    def __len__(self) -> int:
        return len(self.epoch_batches(self.epoch)) - self.start_batch


def train_loader(dataset: PairDataset, sampler: AttributeGroupBatchSampler, workers: int) -> DataLoader:
    return DataLoader(dataset, batch_sampler=sampler, num_workers=workers, collate_fn=collate_pairs,
                      persistent_workers=False, prefetch_factor=4 if workers else None)


def image_loader(paths: Sequence[str], image_size: int, batch_size: int, workers: int) -> DataLoader:
    return DataLoader(ImageFolderDataset(paths, image_size), batch_size=batch_size, shuffle=False,
                      num_workers=workers, prefetch_factor=4 if workers else None)
