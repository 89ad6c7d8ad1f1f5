"""Datasets and the attribute-grouped batch sampler for retrieval fine-tuning and evaluation.

Images are decoded with PIL, squashed to a square of ``image_size`` (the organisers' baseline
resizes to 224 x 224 the same way) and returned as uint8 CHW tensors; the float conversion and
normalisation happen on the whole batch on the training device (:func:`to_model_input`), which
keeps worker-to-main transfers 4x smaller.

Training augmentation is mild and leaves colour names true (colour is an attribute): a random
crop of at least ``scale_min`` of the area, optionally a horizontal flip, and optionally
surveillance-camera conditions (blur, exposure, gamma, a slight cast, grain: the test vehicles
come from road cameras while train/val ones are web pictures). It is seeded per (seed, epoch or
view, sample), so a resumed run draws exactly what an uninterrupted one would, whatever the
number of loader workers.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageFilter
from torch.utils.data import DataLoader, Dataset, Sampler

from ..data.canonical import Dataset as CanonicalDataset


def load_pairs(dataset_dir, split: str) -> pd.DataFrame:
    """The split's pair table (``image``, ``name``, ``kind``, ``attribute``, ``caption``, ``path``)."""
    return CanonicalDataset.open(dataset_dir).table(split)


def load_image(path: str, size: int, rng: np.random.Generator | None = None, scale_min: float = 1.0,
               hflip: bool = False, camera: dict | None = None) -> torch.Tensor:
    with Image.open(path) as image:
        image = image.convert("RGB")
        width, height = image.size
        box = (0, 0, width, height)
        if rng is not None and scale_min < 1.0:
            scale = rng.uniform(scale_min, 1.0)
            crop_w = max(1, round(width * math.sqrt(scale)))
            crop_h = max(1, round(height * math.sqrt(scale)))
            x0 = int(rng.integers(0, width - crop_w + 1))
            y0 = int(rng.integers(0, height - crop_h + 1))
            box = (x0, y0, x0 + crop_w, y0 + crop_h)
        image = image.resize((size, size), Image.BILINEAR, box=box)
        if rng is not None and hflip and rng.random() < 0.5:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        if rng is not None and camera:
            image = camera_look(image, rng, camera)
        array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def keystone(image: Image.Image, shift: float) -> Image.Image:
    """The picture as a camera on a pole sees it: the top edge narrowed by ``shift`` x the width on
    each side (a perspective warp, borders repeated so no black wedge marks the augmented views)."""
    import cv2

    array = np.asarray(image)
    h, w = array.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = np.float32([[shift * w, 0], [w - shift * w, 0], [w, h], [0, h]])
    warped = cv2.warpPerspective(array, cv2.getPerspectiveTransform(src, dst), (w, h), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REPLICATE)
    return Image.fromarray(warped)


def camera_look(image: Image.Image, rng: np.random.Generator, cfg: dict) -> Image.Image:
    """Surveillance-camera conditions (the test images' domain): the view from a pole (``keystone``,
    optional), a distant object's few pixels (``lowres``: drawn at that share of the side and scaled
    back up, optional), blur, darker exposure, gamma, a slight colour cast, sensor grain. Each is applied
    with probability ``cfg["p"]``; the cast is small so that colour names stay true. Exposure, gamma
    and cast go through one lookup table."""
    p = float(cfg["p"])
    if cfg.get("keystone") and rng.random() < p:
        image = keystone(image, float(rng.uniform(*cfg["keystone"])))
    if cfg.get("lowres") and rng.random() < p:
        f = float(rng.uniform(*cfg["lowres"]))
        small = image.resize((max(8, round(image.width * f)), max(8, round(image.height * f))), Image.BOX)
        image = small.resize(image.size, Image.BILINEAR)
    if rng.random() < p:
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(*cfg["blur"]))))
    gain = float(rng.uniform(*cfg["gain"])) if rng.random() < p else 1.0
    gamma = float(rng.uniform(*cfg["gamma"])) if rng.random() < p else 1.0
    cast = float(cfg["cast"])
    tint = 1 + rng.uniform(-cast, cast, size=3) if rng.random() < p else np.ones(3)
    if gain != 1.0 or gamma != 1.0 or (tint != 1).any():
        levels = (np.arange(256) / 255.0 * gain) ** gamma
        table = np.concatenate([np.clip(levels * t * 255 + 0.5, 0, 255) for t in tint]).astype(np.uint8)
        image = image.point(table.tolist())
    if rng.random() < p:
        sigma = float(rng.uniform(*cfg["grain"]))
        array = np.asarray(image, dtype=np.float32) + rng.standard_normal((image.height, image.width, 3),
                                                                          dtype=np.float32) * sigma
        image = Image.fromarray(np.clip(array + 0.5, 0, 255).astype(np.uint8))
    return image


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
    """(image, caption, attribute id, key) training pairs with seeded per-sample augmentation.

    ``augment["views"] = V > 0`` fixes the augmentation to V variants per augmented image (epoch
    e draws variant e mod V), so the model may cache the frozen part of the image tower per
    (image, variant); ``key`` names the variant. ``augment["camera"]["kinds"]`` limits the camera
    look to those kinds (default: all); images that no augmentation touches have a single variant.
    With V = 0 every epoch draws fresh augmentations (nothing can be cached).
    """

    def __init__(self, frame: pd.DataFrame, attribute_ids: torch.Tensor, image_size: int, seed: int,
                 augment: Mapping):
        self.paths = frame["path"].tolist()
        self.captions = frame["caption"].tolist()
        self.attribute_ids = attribute_ids
        self.image_size = image_size
        self.seed = seed
        self.scale_min = float(augment["scale_min"])
        self.hflip = bool(augment["hflip"])
        self.camera = dict(augment["camera"] or {}) or None
        kinds = (self.camera or {}).pop("kinds", None) if self.camera else None
        frame_kinds = frame["kind"].tolist() if "kind" in frame else ["?"] * len(frame)
        self.camera_on = np.array([bool(self.camera) and (kinds is None or k in kinds) for k in frame_kinds])
        geometric = self.scale_min < 1.0 or self.hflip
        self.augmented = self.camera_on | geometric
        self.views = int(augment["views"])
        self.epoch = 0
        self.cached_keys: frozenset[int] = frozenset()  # keys whose features the model has cached

    @property
    def augmenting(self) -> bool:
        return bool(self.augmented.any())

    @property
    def fresh_every_epoch(self) -> bool:
        """Does an image look different in every epoch (then its features cannot be cached)?"""
        return self.augmenting and not self.views

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def key(self, index: int) -> int:
        if not self.views:
            return index
        return index * self.views + (self.epoch % self.views if self.augmented[index] else 0)

    def epoch_keys(self) -> list[int]:
        return [self.key(i) for i in range(len(self))]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        key = self.key(index)
        if key in self.cached_keys:  # the model will not look at the pixels
            return torch.zeros(0, dtype=torch.uint8), self.captions[index], int(self.attribute_ids[index]), key
        if not self.augmented[index]:
            image = load_image(self.paths[index], self.image_size)
        else:
            draw = self.epoch % self.views if self.views else self.epoch
            rng = np.random.default_rng([self.seed, draw, index])
            image = load_image(self.paths[index], self.image_size, rng, self.scale_min, self.hflip,
                               self.camera if self.camera_on[index] else None)
        return image, self.captions[index], int(self.attribute_ids[index]), key


def collate_pairs(items):
    """Batch of pairs; images the model has cached come as placeholders (all-empty: shape (B, 0))."""
    images, captions, attributes, keys = zip(*items)
    loaded = [im for im in images if im.numel()]
    if not loaded:
        batch = torch.zeros(len(images), 0, dtype=torch.uint8)
    else:
        blank = torch.zeros_like(loaded[0])
        batch = torch.stack([im if im.numel() else blank for im in images])
    return batch, list(captions), torch.tensor(attributes, dtype=torch.long), list(keys)


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
