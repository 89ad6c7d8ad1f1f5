"""Traffic-sign templates (TT100K categories) drawn at 128 px, with an anti-aliased pyramid.

Each template is an RGBA image plus the sign's outline points in template pixels, so the exact
bounding box of a warped sign is the box of its warped outline (float pixels, as TT100K gives).
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from . import draw
from ..classes import TT100K_CATEGORIES

SIZE = 128
C = SIZE / 2
R = 60.0  # sign radius in template pixels

RED = (200, 25, 35)
BLUE = (20, 70, 170)
YELLOW = (245, 195, 20)
WHITE = (245, 245, 240)
BLACK = (20, 20, 22)

# The categories the demo draws, as the organisers name them (a dozen frequent TT100K classes).
DEMO_SIGNS = ("pl50", "pl80", "pn", "pne", "i5", "p11", "pl30", "w57", "io", "ip", "pl40", "p26")


def _circle_outline() -> np.ndarray:
    a = np.linspace(0, 2 * math.pi, 96, endpoint=False)
    return np.stack([C + R * np.cos(a), C + R * np.sin(a)], 1)


def _walker(img, cx, cy, s, c) -> None:
    """A stick pedestrian of height ~ 2.2 s centred at (cx, cy)."""
    draw.circle(img, (cx + 0.1 * s, cy - 0.95 * s), 0.22 * s, c)
    draw.thick_line(img, (cx + 0.05 * s, cy - 0.7 * s), (cx - 0.1 * s, cy + 0.2 * s), c, 0.3 * s)
    draw.thick_line(img, (cx - 0.1 * s, cy + 0.2 * s), (cx - 0.45 * s, cy + 1.0 * s), c, 0.25 * s)
    draw.thick_line(img, (cx - 0.1 * s, cy + 0.2 * s), (cx + 0.35 * s, cy + 1.0 * s), c, 0.25 * s)
    draw.thick_line(img, (cx + 0.02 * s, cy - 0.5 * s), (cx - 0.45 * s, cy - 0.05 * s), c, 0.2 * s)
    draw.thick_line(img, (cx + 0.02 * s, cy - 0.5 * s), (cx + 0.45 * s, cy - 0.1 * s), c, 0.2 * s)


def _arrow(img, tail, head, width, c) -> None:
    (x0, y0), (x1, y1) = tail, head
    d = math.hypot(x1 - x0, y1 - y0)
    ux, uy = (x1 - x0) / d, (y1 - y0) / d
    hx, hy = x1 - ux * width * 1.4, y1 - uy * width * 1.4
    draw.thick_line(img, (x0, y0), (hx, hy), c, width)
    nx, ny = -uy, ux
    draw.poly(img, [(x1, y1), (hx + nx * width * 1.3, hy + ny * width * 1.3), (hx - nx * width * 1.3, hy - ny * width * 1.3)], c)


def _prohibitory(rgb, alpha, fill=WHITE) -> None:
    draw.circle(alpha, (C, C), R, 255)
    draw.circle(rgb, (C, C), R, RED)
    draw.circle(rgb, (C, C), R * 0.8, fill)


def _slash(rgb) -> None:
    d = R * 0.8 * math.cos(math.pi / 4)
    draw.thick_line(rgb, (C - d, C - d), (C + d, C + d), RED, R * 0.16)


def _render(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rgb = np.zeros((SIZE, SIZE, 3), np.uint8)
    alpha = np.zeros((SIZE, SIZE), np.uint8)
    outline = _circle_outline()
    if name.startswith("pl") and name[2:].isdigit():
        _prohibitory(rgb, alpha)
        text = name[2:]
        font, thick = cv2.FONT_HERSHEY_DUPLEX, 7
        (tw, th), _ = cv2.getTextSize(text, font, 1.0, thick)
        scale = min(70.0 / tw, 48.0 / th)
        (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
        canvas = np.zeros_like(rgb)
        cv2.putText(canvas, text, (int(C - tw / 2), int(C + th / 2)), font, scale, (255, 255, 255), thick, cv2.LINE_AA)
        # Black digits, blended through the anti-aliased glyph mask.
        m = canvas[:, :, 0] > 0
        rgb[m] = (np.asarray(BLACK) * (canvas[m, :1] / 255.0) + rgb[m] * (1 - canvas[m, :1] / 255.0)).astype(np.uint8)
    elif name == "pn":  # no parking: blue disc, red ring, one red slash
        draw.circle(alpha, (C, C), R, 255)
        draw.circle(rgb, (C, C), R, RED)
        draw.circle(rgb, (C, C), R * 0.8, BLUE)
        d = R * 0.8 * math.cos(math.pi / 4)
        draw.thick_line(rgb, (C - d, C - d), (C + d, C + d), RED, R * 0.18)
    elif name == "pne":  # no entry: red disc, white bar
        draw.circle(alpha, (C, C), R, 255)
        draw.circle(rgb, (C, C), R, RED)
        draw.rect(rgb, C - R * 0.7, C - R * 0.18, C + R * 0.7, C + R * 0.18, WHITE)
    elif name == "p11":  # no honking: horn and slash
        _prohibitory(rgb, alpha)
        draw.poly(rgb, [(C - 30, C - 6), (C - 10, C - 6), (C + 22, C - 22), (C + 22, C + 22), (C - 10, C + 6), (C - 30, C + 6)], BLACK)
        draw.ellipse(rgb, (C + 24, C), (5, 22), BLACK)
        _slash(rgb)
    elif name == "p26":  # no trucks: truck silhouette and slash
        _prohibitory(rgb, alpha)
        draw.rect(rgb, C - 34, C - 22, C + 8, C + 12, BLACK)
        draw.poly(rgb, [(C + 10, C - 10), (C + 26, C - 10), (C + 34, C + 2), (C + 34, C + 12), (C + 10, C + 12)], BLACK)
        for x in (C - 24, C + 22):
            draw.circle(rgb, (x, C + 16), 8, BLACK)
            draw.circle(rgb, (x, C + 16), 3, WHITE)
        _slash(rgb)
    elif name == "i5":  # keep right: blue disc, diagonal arrow down-right
        draw.circle(alpha, (C, C), R, 255)
        draw.circle(rgb, (C, C), R, BLUE)
        draw.circle(rgb, (C, C), R * 0.93, (235, 240, 250), thickness=3)
        _arrow(rgb, (C - 30, C - 30), (C + 30, C + 30), 13, WHITE)
    elif name == "io":  # other mandatory: blue disc, straight-or-right arrows
        draw.circle(alpha, (C, C), R, 255)
        draw.circle(rgb, (C, C), R, BLUE)
        draw.circle(rgb, (C, C), R * 0.93, (235, 240, 250), thickness=3)
        _arrow(rgb, (C - 8, C + 40), (C - 8, C - 40), 12, WHITE)
        draw.thick_line(rgb, (C - 8, C + 10), (C + 14, C - 5), WHITE, 11)
        _arrow(rgb, (C + 10, C - 4), (C + 42, C - 4), 10, WHITE)
    elif name == "ip":  # pedestrian crossing: blue square, white triangle, walker
        outline = np.array([(C - R, C - R), (C + R, C - R), (C + R, C + R), (C - R, C + R)], np.float64)
        draw.poly(alpha, outline, 255)
        draw.poly(rgb, outline, BLUE)
        draw.poly(rgb, [(C, C - 48), (C + 50, C + 42), (C - 50, C + 42)], WHITE)
        for i in range(4):
            x = C - 36 + i * 20
            draw.rect(rgb, x, C + 30, x + 11, C + 38, BLACK)
        _walker(rgb, C, C + 2, 15, BLACK)
    elif name == "w57":  # pedestrians ahead: yellow triangle, black border, walker
        h = R * math.sqrt(3)
        top, base = C - 0.62 * h, C + 0.38 * h
        outline = np.array([(C, top), (C + R, base), (C - R, base)], np.float64)
        draw.poly(alpha, outline, 255)
        draw.poly(rgb, outline, BLACK)
        k = 0.78
        inner = [(C, C + (top - C) * k + 4), (C + R * k, C + (base - C) * k), (C - R * k, C + (base - C) * k)]
        draw.poly(rgb, inner, YELLOW)
        _walker(rgb, C, C + 6, 15, BLACK)
    else:
        raise KeyError(f"no demo drawing for sign {name!r}")
    return rgb, alpha, outline


@functools.lru_cache(maxsize=None)
def template(name: str) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...], np.ndarray]:
    """(rgb pyramid, alpha pyramid, outline) of sign ``name``; level i is 128 / 2**i pixels."""
    if name not in TT100K_CATEGORIES:
        raise KeyError(f"{name!r} is not a TT100K category")
    rgb, alpha, outline = _render(name)
    rgbs, alphas = [rgb], [alpha]
    while rgbs[-1].shape[0] > 8:
        rgbs.append(cv2.pyrDown(rgbs[-1]))
        alphas.append(cv2.pyrDown(alphas[-1]))
    return tuple(rgbs), tuple(alphas), outline


def warp_sign(name: str, size: float, angle_deg: float, squeeze: float, cx: float, cy: float):
    """Place sign ``name`` with its larger side ``size`` px, centred at (cx, cy) in image pixels.

    Returns (rgb patch, alpha patch, patch x0, patch y0, bbox [x, y, w, h] in image pixels).
    """
    rgbs, alphas, outline = template(name)
    a = math.radians(angle_deg)
    ca, sa = math.cos(a), math.sin(a)
    mid = outline.mean(0)
    # Linear part: rotation @ diag(squeeze, 1) * scale, scaled so the box's larger side is `size`.
    A = np.array([[ca * squeeze, -sa], [sa * squeeze, ca]])
    rel = (outline - mid) @ A.T
    scale = size / float((rel.max(0) - rel.min(0)).max())
    A = A * scale
    pts = rel * scale + np.array([cx, cy])
    level = 0
    while level + 1 < len(rgbs) and scale * (2 ** (level + 1)) <= 1.0:
        level += 1
    f = 2**level
    src_rgb, src_a = rgbs[level], alphas[level]
    x0b, y0b = pts.min(0)
    x1b, y1b = pts.max(0)
    px0, py0 = int(math.floor(x0b)) - 2, int(math.floor(y0b)) - 2
    pw, ph = int(math.ceil(x1b)) + 3 - px0, int(math.ceil(y1b)) + 3 - py0
    # Level pixel q is level-0 pixel f * q (pyrDown keeps the even rows and columns), so the
    # level -> patch map is p = A (f q - mid) + (c - p0).
    Af = A * f
    t = -A @ mid + np.array([cx - px0, cy - py0])
    M = np.hstack([Af, t[:, None]]).astype(np.float64)
    rgb = cv2.warpAffine(src_rgb, M, (pw, ph), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    alpha = cv2.warpAffine(src_a, M, (pw, ph), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    # OpenCV coordinates are pixel centres; COCO boxes count from the pixel's corner (+0.5).
    bbox = [float(x0b) + 0.5, float(y0b) + 0.5, float(x1b - x0b), float(y1b - y0b)]
    return rgb, alpha, px0, py0, bbox
