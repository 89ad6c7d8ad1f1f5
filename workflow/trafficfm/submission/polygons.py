"""Label map <-> the AllInOne ``seg`` polygons, the way the organisers write and read them.

Writing follows the baseline's ``mask2polygon``: for every class id, the contours of that class's
binary mask from ``cv2.findContours(mask, RETR_TREE, CHAIN_APPROX_SIMPLE)``, in the label map's own
(original image) pixels, each contour a list of ``[x, y]`` integer points. ``RETR_TREE`` returns
every border of the mask: the outer border of each region *and* the border of each hole in it (and
of each island inside a hole, and so on). All of them go into the class's list as separate
polygons, in OpenCV's order; the nesting hierarchy itself is not written (the format has no place
for it).

Reading follows the organisers' scorer (``polygon2mask``): start from a map of zeros; for each
class key in the JSON object's key order, skip polygons of two points or fewer and draw the rest
with a single ``cv2.fillPoly(mask, polygons, class_id)`` call, later classes overwriting earlier
ones. One ``fillPoly`` call fills its polygons with the even-odd rule, so hole borders cut the
holes back out and islands inside holes are filled again: each class's region comes back pixel
for pixel (the tests check exact round trips on noise and on blobby maps).

Contours of one or two points (a lone pixel, a one-pixel-wide straight run) would be skipped by the
scorer. ``small="pad"`` (the default) repeats their last point up to three points: ``fillPoly``
draws such a degenerate polygon as exactly its pixels, so these regions survive the round trip;
``small="drop"`` leaves them out, which is what the scorer would do with the baseline's output.

Not reproduced from the baseline: its class-0 mask is all ones (``mask[mask != 0] = 0`` followed
by ``mask[mask == 0] = 1``), so its "road" is a single polygon around the whole image. That is
harmless under the scorer (the map starts at 0) but wrong, and it is not what the format describes.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import cv2
import numpy as np

SMALL_CONTOURS = ("pad", "drop")


def class_polygons(mask: np.ndarray, small: str = "pad") -> list[np.ndarray]:
    """Polygons (``(n, 2)`` int32 arrays of x, y) of one binary mask (non-zero = inside)."""
    if small not in SMALL_CONTOURS:
        raise ValueError(f"small must be one of {SMALL_CONTOURS}, not {small!r}")
    contours, _ = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in contours:
        points = contour.reshape(-1, 2)
        if len(points) < 3:
            if small == "drop":
                continue
            points = np.concatenate([points, np.repeat(points[-1:], 3 - len(points), axis=0)])
        polygons.append(np.ascontiguousarray(points, dtype=np.int32))
    return polygons


def label_map_polygons(label: np.ndarray, num_classes: int, small: str = "pad") -> dict[int, list[np.ndarray]]:
    """``{class id: polygons}`` for every class id ``0..num_classes-1`` (empty list when absent).

    ``label`` is a single-channel uint8 map of class ids; values outside ``0..num_classes-1`` are
    the caller's to reject (they get no polygons here).
    """
    if label.ndim != 2 or label.dtype != np.uint8:
        raise ValueError(f"label map must be a 2-D uint8 array, got {label.dtype} {label.shape}")
    label = np.ascontiguousarray(label)
    present = np.flatnonzero(np.bincount(label.ravel(), minlength=256)[:num_classes])
    result: dict[int, list[np.ndarray]] = {c: [] for c in range(num_classes)}
    for class_id in present:
        mask = cv2.compare(label, int(class_id), cv2.CMP_EQ)
        result[int(class_id)] = class_polygons(mask, small)
    return result


def rasterise(classes: Mapping[str, Sequence], height: int, width: int) -> np.ndarray:
    """The organisers' ``polygon2mask`` for one image: a uint8 label map of ``height x width``.

    ``classes`` maps class ids (the JSON's string keys, or ints) to polygon lists, in the order the
    scorer walks them (the JSON object's key order). Pixels no polygon covers stay 0.
    """
    mask = np.zeros((height, width), dtype=np.uint8)
    for key, polygons in classes.items():
        drawn = [np.asarray(p, dtype=np.int32).reshape(-1, 2) for p in polygons if len(p) > 2]
        if drawn:
            cv2.fillPoly(mask, drawn, int(key))
    return mask
