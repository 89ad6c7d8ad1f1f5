"""Compact soft predictions: what an ensemble member keeps so that members can be fused later.

Per AllInOne member and split, in ``<dir>/``:

- ``cls.npz``: ``names`` (image file names), ``index`` (N, k) int16 class ids and ``prob`` (N, k)
  float16 probabilities of the k most likely classes, best first (``top_k`` of 196 classes keeps
  what an average can change while storing 5 % of the full table);
- ``det.json``: the member's detections in the COCO results form (they are already compact);
- ``seg/<stem>.npz``: one file per image, class probabilities quantised to uint8 (p x 255, rounded)
  at the image's original size, zlib-compressed (level 1). 19 classes at 1280 x 720 are 17.5 MB as uint8 and
  70 MB as float32; fusion reads one image of every member at a time, so the fusion of 1,000 maps
  never holds more than one image's tensors.

Per retrieval member and split: ``<split>.npz`` with ``images`` (gallery, D) and ``texts``
(queries, D) float16 L2-normalised embeddings; similarities are recomputed by blocks of queries,
never stored (10,000 x 17,611 float32 would be 700 MB per member).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from .. import atomic

PROB_SCALE = 255  # uint8 quantisation step of segmentation probabilities


def quantise(prob: np.ndarray) -> np.ndarray:
    """Probabilities in [0, 1] -> uint8 (round to the nearest 1/255)."""
    return np.clip(np.rint(np.asarray(prob, dtype=np.float32) * PROB_SCALE), 0, PROB_SCALE).astype(np.uint8)


def dequantise(q: np.ndarray) -> np.ndarray:
    return q.astype(np.float32) / PROB_SCALE


def _save_npz(path: str | Path, **arrays) -> None:
    with atomic.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)


def write_cls(path: str | Path, names: list[str], prob: np.ndarray, top_k: int) -> None:
    """Keep the ``top_k`` largest of each row of ``prob`` (N, classes)."""
    prob = np.asarray(prob, dtype=np.float32)
    k = min(int(top_k), prob.shape[1]) if prob.ndim == 2 else 0
    # stable order: equal probabilities keep the lower class id first
    index = np.argsort(-prob, axis=1, kind="stable")[:, :k] if len(prob) else np.zeros((0, k), np.int64)
    top = np.take_along_axis(prob, index, axis=1) if len(prob) else np.zeros((0, k), np.float32)
    _save_npz(path, names=np.asarray(names, dtype=str), index=index.astype(np.int16), prob=top.astype(np.float16),
              classes=np.int64(prob.shape[1] if prob.ndim == 2 else 0))


def read_cls(path: str | Path) -> dict:
    with np.load(path) as z:
        return {"names": z["names"].tolist(), "index": z["index"].astype(np.int64),
                "prob": z["prob"].astype(np.float32), "classes": int(z["classes"])}


def write_seg(path: str | Path, prob: np.ndarray) -> None:
    """(classes, H, W) probabilities of one image, quantised, zlib level 1 (several times faster to
    write than numpy's default level, for ~1.5x the size)."""
    q = quantise(prob)
    packed = np.frombuffer(zlib.compress(q.tobytes(), 1), dtype=np.uint8)
    with atomic.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, shape=np.asarray(q.shape, dtype=np.int64), zlib=packed)


def read_seg(path: str | Path) -> np.ndarray:
    """(classes, H, W) uint8."""
    with np.load(path) as z:
        shape = tuple(int(v) for v in z["shape"])
        return np.frombuffer(zlib.decompress(z["zlib"].tobytes()), dtype=np.uint8).reshape(shape)


def write_embeddings(path: str | Path, images: np.ndarray, texts: np.ndarray) -> None:
    _save_npz(path, images=np.asarray(images, dtype=np.float16), texts=np.asarray(texts, dtype=np.float16))


def read_embeddings(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as z:
        return z["images"], z["texts"]
