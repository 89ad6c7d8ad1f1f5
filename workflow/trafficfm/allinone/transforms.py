"""Task augmentations on numpy images (H, W, 3 uint8 RGB); boxes and masks follow the image.

Every function takes an explicit ``numpy.random.Generator``: the training loop seeds one per sample
from (seed, task, step, slot), so a run's data stream depends on nothing else (resuming, the number
of worker processes and the number of training processes do not change it).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

IGNORE = 255


def photometric(img: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Brightness and contrast jitter (no hue change: colour is a class cue for the cars)."""
    if strength <= 0:
        return img
    alpha = 1.0 + rng.uniform(-strength, strength)
    beta = 255.0 * rng.uniform(-strength, strength) * 0.5
    mean = float(img.mean())
    out = (img.astype(np.float32) - mean) * alpha + mean + beta
    return np.clip(out, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------- classification
def cls_train(img: np.ndarray, size: int, rng: np.random.Generator, scale=(0.6, 1.0), ratio=(0.75, 1.333),
              hflip: bool = True, jitter: float = 0.2) -> np.ndarray:
    """Random resized crop to ``size`` x ``size``, horizontal flip, brightness/contrast jitter."""
    h, w = img.shape[:2]
    area = h * w
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw = int(round(math.sqrt(target * aspect)))
        ch = int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            x0 = int(rng.integers(0, w - cw + 1))
            y0 = int(rng.integers(0, h - ch + 1))
            img = img[y0 : y0 + ch, x0 : x0 + cw]
            break
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if min(img.shape[:2]) > size else cv2.INTER_LINEAR)
    if hflip and rng.random() < 0.5:
        img = img[:, ::-1]
    return photometric(np.ascontiguousarray(img), rng, jitter)


def cls_eval(img: np.ndarray, size: int) -> np.ndarray:
    interp = cv2.INTER_AREA if min(img.shape[:2]) > size else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)


# ------------------------------------------------------------------------------------------ detection
def det_train(img: np.ndarray, boxes: np.ndarray, labels: np.ndarray, crop: int, rng: np.random.Generator,
              positive_prob: float = 0.75, scale=(0.8, 1.25), min_visible: float = 0.5, hflip: bool = False,
              jitter: float = 0.2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A ``crop`` x ``crop`` window at (near) native scale.

    With probability ``positive_prob`` (and when the image has boxes) the window is placed so that a
    randomly chosen box lies inside it at a random position; otherwise it is uniform over the image.
    The scale factor is log-uniform in ``scale`` (1 = native pixels). Boxes that keep less than
    ``min_visible`` of their area, or end up under 2 px, are dropped.
    """
    h, w = img.shape[:2]
    s = math.exp(rng.uniform(math.log(scale[0]), math.log(scale[1])))
    win = crop / s  # window side in source pixels
    if len(boxes) and rng.random() < positive_prob:
        b = boxes[int(rng.integers(len(boxes)))]
        bw, bh = b[2] - b[0], b[3] - b[1]
        lo_x, hi_x = b[2] - win, b[0]
        lo_y, hi_y = b[3] - win, b[1]
        if bw >= win:
            lo_x = hi_x = (b[0] + b[2] - win) / 2
        if bh >= win:
            lo_y = hi_y = (b[1] + b[3] - win) / 2
        x0 = rng.uniform(lo_x, hi_x)
        y0 = rng.uniform(lo_y, hi_y)
    else:
        x0 = rng.uniform(0, max(w - win, 0))
        y0 = rng.uniform(0, max(h - win, 0))
    # keep the window on the image where possible
    x0 = min(max(x0, 0.0), max(w - win, 0.0))
    y0 = min(max(y0, 0.0), max(h - win, 0.0))
    # affine: source -> crop
    m = np.array([[s, 0, -x0 * s], [0, s, -y0 * s]], dtype=np.float64)
    interp = cv2.INTER_LINEAR if s >= 1 else cv2.INTER_AREA
    out = cv2.warpAffine(img, m, (crop, crop), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    if len(boxes):
        nb = boxes.astype(np.float64).copy()
        nb[:, [0, 2]] = (nb[:, [0, 2]] - x0) * s
        nb[:, [1, 3]] = (nb[:, [1, 3]] - y0) * s
        area = (nb[:, 2] - nb[:, 0]) * (nb[:, 3] - nb[:, 1])
        clipped = nb.clip(0, crop)
        carea = (clipped[:, 2] - clipped[:, 0]).clip(0) * (clipped[:, 3] - clipped[:, 1]).clip(0)
        keep = (carea >= min_visible * np.maximum(area, 1e-6)) & ((clipped[:, 2] - clipped[:, 0]) >= 2) & (
            (clipped[:, 3] - clipped[:, 1]) >= 2
        )
        nb, nl = clipped[keep], labels[keep]
    else:
        nb, nl = np.zeros((0, 4)), np.zeros((0,), dtype=np.int64)
    if hflip and rng.random() < 0.5:
        out = out[:, ::-1]
        nb = nb.copy()
        nb[:, [0, 2]] = crop - nb[:, [2, 0]]
    out = photometric(np.ascontiguousarray(out), rng, jitter)
    return out, nb.astype(np.float32), nl.astype(np.int64)


def pad_to_multiple(img: np.ndarray, divisor: int, value=0) -> np.ndarray:
    h, w = img.shape[:2]
    ph, pw = (-h) % divisor, (-w) % divisor
    if ph == 0 and pw == 0:
        return img
    pad = ((0, ph), (0, pw)) + ((0, 0),) * (img.ndim - 2)
    return np.pad(img, pad, constant_values=value)


# --------------------------------------------------------------------------------------- segmentation
def seg_train(img: np.ndarray, mask: np.ndarray, crop_hw: tuple[int, int], rng: np.random.Generator,
              scale=(0.75, 1.5), hflip: bool = True, jitter: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Random scale, random crop of ``crop_hw`` (padding with ignore), horizontal flip, jitter."""
    s = math.exp(rng.uniform(math.log(scale[0]), math.log(scale[1])))
    h, w = img.shape[:2]
    nh, nw = max(1, int(round(h * s))), max(1, int(round(w * s)))
    img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    mask = cv2.resize(mask, (nw, nh), interpolation=cv2.INTER_NEAREST)
    ch, cw = crop_hw
    ph, pw = max(ch - nh, 0), max(cw - nw, 0)
    if ph or pw:
        img = np.pad(img, ((0, ph), (0, pw), (0, 0)), constant_values=0)
        mask = np.pad(mask, ((0, ph), (0, pw)), constant_values=IGNORE)
    h, w = mask.shape
    y0 = int(rng.integers(0, h - ch + 1))
    x0 = int(rng.integers(0, w - cw + 1))
    img = img[y0 : y0 + ch, x0 : x0 + cw]
    mask = mask[y0 : y0 + ch, x0 : x0 + cw]
    if hflip and rng.random() < 0.5:
        img, mask = img[:, ::-1], mask[:, ::-1]
    return photometric(np.ascontiguousarray(img), rng, jitter), np.ascontiguousarray(mask)
