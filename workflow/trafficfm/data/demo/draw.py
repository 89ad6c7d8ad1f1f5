"""Drawing helpers shared by the demo generators.

Conventions: images are ``uint8`` RGB arrays of shape ``(h, w, 3)``; label maps are ``uint8``
``(h, w)``; coordinates are floats in pixels (``x`` right, ``y`` down) and are drawn with
OpenCV's sub-pixel ``shift`` so shapes move smoothly with their parameters. Every random choice
comes from a ``numpy.random.Generator`` made by :func:`rng_for`, so a file depends only on the
seed and its own keys (task, split, index), never on what was generated before it.
"""

from __future__ import annotations

import colorsys
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

SHIFT = 4  # sub-pixel bits for OpenCV drawing
ONE = 1 << SHIFT
AA = cv2.LINE_AA


def rng_for(seed: int, *keys: int | str) -> np.random.Generator:
    """A generator that depends only on ``seed`` and ``keys`` (ints or strings)."""
    ints = [int(seed) & 0xFFFFFFFF]
    for key in keys:
        ints.append(key & 0xFFFFFFFF if isinstance(key, int) else zlib.crc32(str(key).encode()))
    return np.random.default_rng(np.random.SeedSequence(ints))


def loguniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def colour(c) -> tuple:
    """OpenCV wants a tuple of Python numbers."""
    if np.isscalar(c):
        return (int(c),)
    return tuple(int(round(float(v))) for v in c)


def _pts(points) -> np.ndarray:
    return np.round(np.asarray(points, dtype=np.float64) * ONE).astype(np.int32).reshape(-1, 1, 2)


def poly(img: np.ndarray, points, c, aa: bool = True) -> None:
    """Filled polygon (anti-aliased unless ``aa`` is False, which label maps need)."""
    cv2.fillPoly(img, [_pts(points)], colour(c), AA if aa else cv2.LINE_8, SHIFT)


def polyline(img: np.ndarray, points, c, thickness: int = 1, closed: bool = False, aa: bool = True) -> None:
    cv2.polylines(img, [_pts(points)], closed, colour(c), max(1, int(thickness)), AA if aa else cv2.LINE_8, SHIFT)


def line(img: np.ndarray, p0, p1, c, thickness: float = 1, aa: bool = True) -> None:
    p0 = (int(round(p0[0] * ONE)), int(round(p0[1] * ONE)))
    p1 = (int(round(p1[0] * ONE)), int(round(p1[1] * ONE)))
    cv2.line(img, p0, p1, colour(c), max(1, int(round(thickness))), AA if aa else cv2.LINE_8, SHIFT)


def thick_line(img: np.ndarray, p0, p1, c, width: float, aa: bool = True) -> None:
    """A line of fractional width, drawn as a polygon (OpenCV's thickness is whole pixels)."""
    (x0, y0), (x1, y1) = p0, p1
    dx, dy = x1 - x0, y1 - y0
    n = max(1e-6, float(np.hypot(dx, dy)))
    ox, oy = -dy / n * width / 2, dx / n * width / 2
    poly(img, [(x0 + ox, y0 + oy), (x1 + ox, y1 + oy), (x1 - ox, y1 - oy), (x0 - ox, y0 - oy)], c, aa)


def circle(img: np.ndarray, center, radius: float, c, thickness: int = -1, aa: bool = True) -> None:
    cx, cy = center
    cv2.circle(
        img,
        (int(round(cx * ONE)), int(round(cy * ONE))),
        max(1, int(round(radius * ONE))),
        colour(c),
        thickness,
        AA if aa else cv2.LINE_8,
        SHIFT,
    )


def ellipse(img: np.ndarray, center, axes, c, angle: float = 0.0, thickness: int = -1, aa: bool = True,
            start: float = 0.0, end: float = 360.0) -> None:
    cx, cy = center
    ax, ay = axes
    cv2.ellipse(
        img,
        (int(round(cx * ONE)), int(round(cy * ONE))),
        (max(1, int(round(ax * ONE))), max(1, int(round(ay * ONE)))),
        float(angle),
        float(start),
        float(end),
        colour(c),
        thickness,
        AA if aa else cv2.LINE_8,
        SHIFT,
    )


def rect(img: np.ndarray, x0: float, y0: float, x1: float, y1: float, c, aa: bool = True) -> None:
    poly(img, [(x0, y0), (x1, y0), (x1, y1), (x0, y1)], c, aa)


# --------------------------------------------------------------------------- textures


def smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float, channels: int = 1) -> np.ndarray:
    """Value noise of unit-ish variance with features about ``cell`` pixels wide: float32 (h, w[, c])."""
    cell = max(1.0, float(cell))
    gh, gw = int(np.ceil(h / cell)) + 2, int(np.ceil(w / cell)) + 2
    grid = rng.standard_normal((gh, gw, channels), dtype=np.float32)
    big = cv2.resize(grid, (int(gw * cell), int(gh * cell)), interpolation=cv2.INTER_CUBIC)
    if big.ndim == 2:
        big = big[:, :, None]
    oy = int(rng.integers(0, max(1, big.shape[0] - h)))
    ox = int(rng.integers(0, max(1, big.shape[1] - w)))
    out = big[oy : oy + h, ox : ox + w]
    return out[:, :, 0] if channels == 1 else out


def fractal_noise(rng: np.random.Generator, h: int, w: int, cell: float, octaves: int = 3) -> np.ndarray:
    """Sum of :func:`smooth_noise` octaves (cell, cell/2, ...): float32 (h, w), roughly unit variance."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for i in range(octaves):
        out += amp * smooth_noise(rng, h, w, max(1.0, cell / (2**i)))
        total += amp * amp
        amp *= 0.55
    return out / np.float32(np.sqrt(total))


def grain(rng: np.random.Generator, h: int, w: int, sigma: float, tile: int = 64) -> np.ndarray:
    """Per-pixel luminance grain (float32 (h, w, 1)); larger images tile a random patch for speed."""
    if h * w <= tile * tile * 2:
        return (rng.standard_normal((h, w, 1), dtype=np.float32) * np.float32(sigma))
    base = rng.standard_normal((tile, tile, 1), dtype=np.float32) * np.float32(sigma)
    reps = (int(np.ceil(h / tile)) + 1, int(np.ceil(w / tile)) + 1, 1)
    big = np.tile(base, reps)
    oy, ox = int(rng.integers(0, tile)), int(rng.integers(0, tile))
    return big[oy : oy + h, ox : ox + w]


def vertical_gradient(h: int, w: int, top, bottom) -> np.ndarray:
    """float32 (h, w, 3) from colour ``top`` to ``bottom``."""
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    top = np.asarray(top, np.float32)[None, None, :]
    bottom = np.asarray(bottom, np.float32)[None, None, :]
    return np.broadcast_to(top * (1 - t) + bottom * t, (h, w, 3)).copy()


def to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(img, 0, 255).astype(np.uint8) if img.dtype != np.uint8 else img


def textured_patch(rng: np.random.Generator, h: int, w: int, base, low: float = 12.0, fine: float = 6.0,
                   cell: float = 8.0) -> np.ndarray:
    """float32 (h, w, 3): colour ``base`` with low-frequency blotches and fine grain."""
    base = np.asarray(base, np.float32)[None, None, :]
    lum = smooth_noise(rng, h, w, cell)[:, :, None] * np.float32(low)
    if fine > 0:
        lum = lum + rng.standard_normal((h, w, 1), dtype=np.float32) * np.float32(fine)
    return base + lum


def blend(dst: np.ndarray, src: np.ndarray, alpha: np.ndarray, x: int, y: int) -> tuple[slice, slice, np.ndarray] | None:
    """Alpha-composite ``src`` (h, w, 3; uint8 or float) with ``alpha`` (h, w; uint8 0..255) onto
    ``dst`` (uint8, in place) at integer offset ``(x, y)``, clipped to ``dst``.

    Returns the destination slices and the clipped alpha (for writing label maps), or None when
    nothing overlaps.
    """
    H, W = dst.shape[:2]
    h, w = alpha.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x0 >= x1 or y0 >= y1:
        return None
    sy, sx = slice(y0 - y, y1 - y), slice(x0 - x, x1 - x)
    a = alpha[sy, sx]
    region = dst[y0:y1, x0:x1]
    af = a.astype(np.float32)[:, :, None] * np.float32(1 / 255)
    out = region.astype(np.float32) * (1 - af) + src[sy, sx].astype(np.float32) * af
    region[...] = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return slice(y0, y1), slice(x0, x1), a


def light_jitter(img: np.ndarray, rng: np.random.Generator, gain=(0.8, 1.15), gamma=(0.85, 1.2),
                 cast: float = 0.05) -> np.ndarray:
    """Global brightness, gamma and a mild colour cast, via one lookup table (fast on any size)."""
    g = rng.uniform(*gain)
    gm = rng.uniform(*gamma)
    c = 1.0 + rng.uniform(-cast, cast, 3)
    x = np.arange(256, dtype=np.float64) / 255.0
    lut = np.stack([np.clip(255.0 * g * c[k] * x**gm, 0, 255) for k in range(3)], axis=1)
    lut = np.round(lut).astype(np.uint8).reshape(256, 1, 3).transpose(1, 0, 2)
    return cv2.LUT(img, lut)


def add_grain(img: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Add luminance grain to a uint8 image (integer arithmetic: cheaper than float)."""
    h, w = img.shape[:2]
    noise = np.rint(grain(rng, h, w, sigma)).astype(np.int16)
    return np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def save_jpeg(path: Path, rgb: np.ndarray, quality: int) -> None:
    Image.fromarray(rgb, "RGB").save(path, "JPEG", quality=int(quality))


def save_png(path: Path, label: np.ndarray) -> None:
    Image.fromarray(label, "L").save(path, "PNG")


def random_name(rng: np.random.Generator, length: int = 10) -> str:
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", np.uint8)
    return rng.choice(letters, length).tobytes().decode()


def hsv_colour(h: float, s: float, v: float) -> np.ndarray:
    """RGB (float, 0..255) of hue in degrees, saturation and value in 0..1."""
    return np.array(colorsys.hsv_to_rgb((h % 360.0) / 360.0, s, v)) * 255.0


def random_clutter(img: np.ndarray, rng: np.random.Generator, n: int, size: tuple[float, float],
                   palette=None, region=None) -> None:
    """Random rectangles, circles, ellipses and polygons in random (or palette) colours."""
    H, W = img.shape[:2]
    x_lo, y_lo, x_hi, y_hi = region if region is not None else (0, 0, W, H)
    for _ in range(n):
        s = rng.uniform(*size)
        cx, cy = rng.uniform(x_lo, x_hi), rng.uniform(y_lo, y_hi)
        if palette is not None and rng.random() < 0.5:
            c = np.asarray(palette[int(rng.integers(len(palette)))], np.float32) * rng.uniform(0.6, 1.1)
        else:
            c = rng.uniform(0, 255, 3)
        kind = int(rng.integers(4))
        if kind == 0:
            a = rng.uniform(0.4, 2.5)
            rect(img, cx - s * a / 2, cy - s / 2, cx + s * a / 2, cy + s / 2, c)
        elif kind == 1:
            circle(img, (cx, cy), s / 2, c)
        elif kind == 2:
            ellipse(img, (cx, cy), (s / 2, s * rng.uniform(0.2, 0.6)), c, angle=rng.uniform(0, 180))
        else:
            k = int(rng.integers(3, 7))
            ang = np.sort(rng.uniform(0, 2 * np.pi, k))
            rad = s / 2 * rng.uniform(0.5, 1.0, k)
            poly(img, np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1), c)
