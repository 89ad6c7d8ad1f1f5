"""Segmentation images in the spirit of BDD100K: street scenes and their label maps.

The scene is painted back to front; every shape is drawn once into a coverage mask that both
blends its texture into the image and writes its class into the label map (where the coverage
is at least half), so labels match pixels exactly. Textures are procedural (asphalt grain, tiles,
windows, bricks, foliage, grass, clouds, paint with shading) and colours overlap between classes
(grey road, sidewalk, wall and pole; green vegetation and terrain; any colour for vehicles and
clothes), so colour alone does not give the class.

255 (ignore) marks an ego-vehicle bonnet at the bottom of some images, unlabelled clutter
(bins, crates, posters) and, in some images, a one-pixel ring inside object boundaries.
Every class of :data:`BDD100K_CLASSES` can be requested (``forced``), which is how the generator
guarantees that all 19 appear in every split however small.
"""

from __future__ import annotations

import cv2
import numpy as np

from . import draw, hard
from ..classes import BDD100K_CLASSES, IGNORE_INDEX

C = {name: i for i, name in enumerate(BDD100K_CLASSES)}
THINGS = tuple(range(C["person"], C["bicycle"] + 1))

# Chance that an image shows a class when not forced (road, sidewalk, building and sky always do).
CLASS_PROB = {
    "wall": 0.3, "fence": 0.3, "pole": 0.85, "traffic light": 0.45, "traffic sign": 0.6, "vegetation": 0.85,
    "terrain": 0.55, "person": 0.6, "rider": 0.25, "car": 0.9, "truck": 0.3, "bus": 0.2, "train": 0.07,
    "motorcycle": 0.15, "bicycle": 0.2,
}


def image_size(rng: np.random.Generator, seg_size) -> tuple[int, int]:
    """Mostly ``seg_size`` (width, height); one image in five is scaled by 0.9-1.1."""
    w, h = int(seg_size[0]), int(seg_size[1])
    if rng.random() < 0.2:
        f = rng.uniform(0.9, 1.1)
        w, h = int(round(w * f / 2) * 2), int(round(h * f / 2) * 2)
    return w, h


class Painter:
    """Image and label map painted together through coverage masks."""

    def __init__(self, h: int, w: int):
        self.h, self.w = h, w
        self.img = np.zeros((h, w, 3), np.float32)
        self.lab = np.full((h, w), C["sky"], np.uint8)
        self.yy, self.xx = np.mgrid[0:h, 0:w].astype(np.float32)

    def mask(self) -> np.ndarray:
        return np.zeros((self.h, self.w), np.uint8)

    def fill(self, mask: np.ndarray, tex, cls: int) -> bool:
        """Blend ``tex`` (float (h, w, 3) over the whole image, a function of the ROI box, or a colour)
        where ``mask`` covers, and label the covered pixels ``cls``. False when nothing is covered."""
        x, y, bw, bh = cv2.boundingRect(mask)
        if bw == 0 or bh == 0:
            return False
        sl = (slice(y, y + bh), slice(x, x + bw))
        m = mask[sl]
        if callable(tex):
            t = tex(x, y, bw, bh)
        elif isinstance(tex, np.ndarray) and tex.ndim == 3:
            t = tex[sl]
        else:
            t = np.asarray(tex, np.float32)[None, None, :]
        a = m.astype(np.float32)[:, :, None] * np.float32(1 / 255)
        self.img[sl] = self.img[sl] * (1 - a) + t * a
        self.lab[sl][m >= 128] = cls
        return True


# --------------------------------------------------------------------------- textures


def _flat(rng, base, low=8.0, fine=4.0, cell=6.0):
    def tex(x, y, w, h):
        return draw.textured_patch(rng, h, w, base, low=low, fine=fine, cell=cell)

    return tex


def _shaded(rng, base, top=1.15, bottom=0.75, fine=3.0):
    """Paint: vertical shading (lighter on top) and a little grain."""

    def tex(x, y, w, h):
        t = np.linspace(top, bottom, h, dtype=np.float32)[:, None, None]
        out = np.asarray(base, np.float32)[None, None, :] * t
        return out + rng.standard_normal((h, w, 1), dtype=np.float32) * np.float32(fine)

    return tex


def _windows(rng, base, glass, sx, sy, fx=0.55, fy=0.55, low=6.0):
    """A facade: ``base`` with a grid of ``glass`` windows (in image coordinates, so it tiles)."""
    ox, oy = rng.uniform(0, sx), rng.uniform(0, sy)

    def tex(x, y, w, h):
        out = draw.textured_patch(rng, h, w, base, low=low, fine=3.0, cell=4.0)
        xs = (np.arange(x, x + w, dtype=np.float32) - ox) % sx < sx * fx
        ys = (np.arange(y, y + h, dtype=np.float32) - oy) % sy < sy * fy
        win = ys[:, None] & xs[None, :]
        g = np.asarray(glass, np.float32) + rng.normal(0, 10, (h, w, 1)).astype(np.float32)
        out[win] = g[win]
        return out

    return tex


def _bricks(rng, base, bh=4.0, bw=9.0):
    def tex(x, y, w, h):
        out = draw.textured_patch(rng, h, w, base, low=6.0, fine=5.0, cell=3.0)
        ys = np.arange(y, y + h, dtype=np.float32)
        xs = np.arange(x, x + w, dtype=np.float32)
        row = np.floor(ys / bh)
        mortar_y = (ys % bh) < 1.0
        shift = (row % 2) * bw / 2
        mortar_x = ((xs[None, :] + shift[:, None]) % bw) < 1.0
        m = mortar_y[:, None] | mortar_x
        out[m] = out[m] * 0.6 + 80
        return out

    return tex


def _foliage(rng, hue):
    def tex(x, y, w, h):
        n = draw.fractal_noise(rng, h, w, 5.0, octaves=3)
        v = np.clip(0.42 + 0.18 * n, 0.08, 0.9)
        base = draw.hsv_colour(hue, 0.65, 1.0) / 255.0
        out = v[:, :, None] * base[None, None, :] * 255.0
        dark = n < -0.9
        out[dark] *= 0.45
        return out.astype(np.float32)

    return tex


def _grass(rng, base):
    def tex(x, y, w, h):
        out = draw.textured_patch(rng, h, w, base, low=10.0, fine=9.0, cell=10.0)
        streak = draw.smooth_noise(rng, h, max(2, w // 1), 1.5)[:, :, None] * 6.0
        return out + streak

    return tex


def _tiles(rng, base, step):
    def tex(x, y, w, h):
        out = draw.textured_patch(rng, h, w, base, low=5.0, fine=4.0, cell=5.0)
        ys = np.arange(y, y + h, dtype=np.float32)
        xs = np.arange(x, x + w, dtype=np.float32)
        m = ((ys % step) < 1.0)[:, None] | ((xs % (step * 1.5)) < 1.0)[None, :]
        out[m] *= 0.82
        return out

    return tex


# --------------------------------------------------------------------------- scene


class _Scene:
    def __init__(self, rng, w, h):
        self.rng, self.w, self.h = rng, w, h
        self.yh = rng.uniform(0.38, 0.52) * h
        self.xv = rng.uniform(0.35, 0.65) * w
        self.half_top = rng.uniform(0.02, 0.05) * w
        self.left = self.xv - rng.uniform(0.55, 1.0) * w
        self.right = self.xv + rng.uniform(0.55, 1.0) * w
        self.kerb = rng.uniform(0.25, 0.7)

    def t(self, y):
        return (y - self.yh) / (self.h - self.yh)

    def edge(self, y, side):
        bottom = self.left if side < 0 else self.right
        top = self.xv + side * self.half_top
        return top + (bottom - top) * self.t(y)

    def outer(self, y, side):
        """Outer edge of the sidewalk."""
        e = self.edge(y, side)
        return e + (e - self.xv) * self.kerb

    def scale(self, y):
        """Pixel height of a 1.5 m object standing at row y."""
        return max(0.5, y - self.yh)


def _sky_and_far(p: Painter, rng, sc: _Scene, want: set) -> None:
    w, h, yh = sc.w, sc.h, sc.yh
    top = draw.hsv_colour(rng.uniform(195, 230), rng.uniform(0.3, 0.7), rng.uniform(0.6, 0.95))
    if rng.random() < 0.35:
        g = rng.uniform(140, 210)
        top = np.array([g, g, g + 6])
    sky = draw.vertical_gradient(h, w, top, top * 0.55 + 105)
    sky += np.maximum(0, draw.fractal_noise(rng, h, w, w / 8, 3))[:, :, None] * rng.uniform(15, 45)
    p.img[:] = sky
    # Buildings on both sides, tall near the edges, receding towards the vanishing point.
    for side in (-1, 1):
        x = sc.xv + side * sc.half_top * rng.uniform(1, 3)
        while (side < 0 and x > -5) or (side > 0 and x < w + 5):
            bw = rng.uniform(0.08, 0.25) * w
            x2 = x + side * bw
            dist = abs((x + x2) / 2 - sc.xv) / w
            hgt = (rng.uniform(0.15, 0.5) + 1.4 * dist) * yh
            base = yh + rng.uniform(0.0, 0.08) * h
            m = p.mask()
            draw.poly(m, [(x, base), (x2, base), (x2, yh - hgt * (1 + 0.2 * side * (x2 - x) / w)), (x, yh - hgt)], 255, aa=True)
            style = rng.random()
            wall_c = rng.uniform(80, 220, 3) if style < 0.7 else np.array([rng.uniform(140, 200)] * 3)
            glass = (np.array([50, 65, 85]) * rng.uniform(0.7, 1.5)) if rng.random() < 0.7 else wall_c * 0.5
            sx, sy = rng.uniform(5, 12), rng.uniform(6, 13)
            p.fill(m, _windows(rng, wall_c, glass, sx, sy, rng.uniform(0.35, 0.65), rng.uniform(0.4, 0.65)), C["building"])
            x = x2 + side * rng.uniform(-0.01, 0.04) * w
    if "vegetation" in want:  # tree line / hedges along the horizon
        for _ in range(int(rng.integers(2, 6))):
            m = p.mask()
            cx = rng.uniform(0, w)
            for _ in range(int(rng.integers(2, 5))):
                r = rng.uniform(0.03, 0.09) * w
                draw.circle(m, (cx + rng.normal(0, r), yh - rng.uniform(0, 2.2) * r), r, 255)
            p.fill(m, _foliage(rng, rng.uniform(75, 130)), C["vegetation"])


def _ground(p: Painter, rng, sc: _Scene, want: set) -> None:
    w, h, yh = sc.w, sc.h, sc.yh
    m = p.mask()
    draw.rect(m, -2, yh, w + 2, h + 2, 255)
    if "terrain" in want:
        p.fill(m, _grass(rng, draw.hsv_colour(rng.uniform(50, 110), rng.uniform(0.35, 0.7), rng.uniform(0.35, 0.6))), C["terrain"])
    else:
        g = rng.uniform(120, 170)
        p.fill(m, _tiles(rng, (g, g * 0.97, g * 0.93), rng.uniform(4, 8)), C["sidewalk"])
    for side in (-1, 1):
        m = p.mask()
        draw.poly(m, [(sc.xv + side * sc.half_top, yh), (sc.outer(yh, side) + side * 2, yh), (sc.outer(h, side), h), (sc.edge(h, side), h)], 255)
        g = rng.uniform(120, 190)
        p.fill(m, _tiles(rng, (g, g * rng.uniform(0.9, 1.0), g * rng.uniform(0.8, 0.98)), rng.uniform(4, 9)), C["sidewalk"])
    m = p.mask()
    draw.poly(m, [(sc.edge(yh, -1), yh), (sc.edge(yh, 1), yh), (sc.edge(h, 1), h), (sc.edge(h, -1), h)], 255)
    g = rng.uniform(60, 115)
    p.fill(m, _flat(rng, (g, g, g + 4), low=6, fine=6, cell=8), C["road"])
    # Lane markings belong to the road.
    lane = (230, 230, 220) if rng.random() < 0.7 else (235, 195, 40)
    tt = 0.04
    while tt < 1.0:
        t1 = min(1.0, tt + 0.07 + 0.1 * tt)
        ya, yb = yh + tt * (h - yh), yh + t1 * (h - yh)
        xa, xb = (sc.edge(ya, -1) + sc.edge(ya, 1)) / 2, (sc.edge(yb, -1) + sc.edge(yb, 1)) / 2
        wa, wb = 0.5 + 0.012 * w * tt, 0.5 + 0.012 * w * t1
        m = p.mask()
        draw.poly(m, [(xa - wa, ya), (xa + wa, ya), (xb + wb, yb), (xb - wb, yb)], 255)
        p.fill(m, lane, C["road"])
        tt = t1 + 0.06 + 0.08 * t1


def _wall_or_fence(p: Painter, rng, sc: _Scene, cls: str) -> None:
    """A band along the outer edge of a sidewalk, its height shrinking with distance."""
    side = -1 if rng.random() < 0.5 else 1
    ya, yb = sc.yh + rng.uniform(0.02, 0.3) * (sc.h - sc.yh), sc.h + 2
    hh = rng.uniform(0.4, 0.9)
    pa, pb = sc.outer(ya, side), sc.outer(yb, side)
    ha, hb = hh * sc.scale(ya), hh * sc.scale(yb)
    m = p.mask()
    if cls == "wall":
        draw.poly(m, [(pa, ya), (pb, yb), (pb, yb - hb), (pa, ya - ha)], 255)
        if rng.random() < 0.5:
            tex = _bricks(rng, draw.hsv_colour(rng.uniform(0, 30), rng.uniform(0.3, 0.6), rng.uniform(0.45, 0.75)))
        else:
            g = rng.uniform(110, 190)
            tex = _flat(rng, (g, g, g * 0.95), low=10, fine=5, cell=5)
        p.fill(m, tex, C["wall"])
    else:
        n = int(rng.integers(10, 30))
        for k in range(n + 1):  # posts
            f = k / n
            x, y, hgt = pa + (pb - pa) * f, ya + (yb - ya) * f, ha + (hb - ha) * f
            draw.thick_line(m, (x, y), (x, y - hgt), 255, max(1.0, 0.012 * sc.scale(y)))
        for f in (0.15, 0.55, 0.95):  # rails
            draw.thick_line(m, (pa, ya - ha * f), (pb, yb - hb * f), 255, max(1.0, 0.02 * sc.scale((ya + yb) / 2)))
        c = [(90, 95, 90), (60, 90, 60), (120, 90, 60), (170, 170, 175)][int(rng.integers(4))]
        p.fill(m, _flat(rng, c, low=6, fine=6, cell=3), C["fence"])


def _pole(p: Painter, rng, sc: _Scene, y: float, side: int, want: set, must=()) -> None:
    s = sc.scale(y)
    x = sc.edge(y, side) + rng.uniform(0.05, 0.6) * (sc.outer(y, side) - sc.edge(y, side))
    top = y - rng.uniform(2.2, 3.5) * s
    pw = max(1.2, 0.05 * s)
    g = rng.uniform(70, 170)
    m = p.mask()
    draw.rect(m, x - pw / 2, top, x + pw / 2, y, 255)
    arm = 0.0
    if "traffic light" in must or ("traffic light" in want and rng.random() < 0.6):
        arm = -side * rng.uniform(0.4, 1.2) * s
        draw.thick_line(m, (x, top + pw), (x + arm, top + pw), 255, pw)
    p.fill(m, _shaded(rng, (g, g, g * 1.03), 1.1, 0.9), C["pole"])
    if arm:
        bw, bh = max(2.0, 0.18 * s), max(5.0, 0.5 * s)
        bx = x + arm
        m = p.mask()
        draw.rect(m, bx - bw / 2, top + pw, bx + bw / 2, top + pw + bh, 255)
        p.fill(m, (30, 30, 32), C["traffic light"])
        lit = int(rng.integers(3))
        for k, lc in enumerate([(235, 50, 40), (240, 190, 40), (50, 220, 100)]):
            m = p.mask()
            draw.circle(m, (bx, top + pw + bh * (k + 0.5) / 3), bw * 0.32, 255)
            p.fill(m, lc if k == lit else np.array(lc) * 0.35, C["traffic light"])
    if "traffic sign" in must or ("traffic sign" in want and rng.random() < 0.7):
        r = max(2.0, rng.uniform(0.2, 0.35) * s)
        cy = top + (3.5 * r if arm else r)
        m = p.mask()
        kind = int(rng.integers(3))
        if kind == 0:
            draw.circle(m, (x, cy), r, 255)
        elif kind == 1:
            draw.poly(m, [(x, cy - r), (x + r, cy + 0.75 * r), (x - r, cy + 0.75 * r)], 255)
        else:
            draw.rect(m, x - r * 1.2, cy - r * 0.8, x + r * 1.2, cy + r * 0.8, 255)
        c = [(200, 30, 35), (30, 70, 170), (240, 200, 30), (30, 130, 70), (240, 240, 240)][int(rng.integers(5))]

        def sign_tex(x0, y0, bw, bh, c=c, r=r, cx=x, cy=cy):
            out = np.empty((bh, bw, 3), np.float32)
            out[:] = np.asarray(c, np.float32)
            yy, xx = np.mgrid[y0 : y0 + bh, x0 : x0 + bw]
            inner = (xx - cx) ** 2 + (yy - cy) ** 2 < (0.5 * r) ** 2
            out[inner] = (245, 245, 240) if sum(c) < 600 else (30, 30, 30)
            return out

        p.fill(m, sign_tex, C["traffic sign"])


def _tree(p: Painter, rng, sc: _Scene, y: float, side: int) -> None:
    s = sc.scale(y)
    x = sc.outer(y, side) + side * rng.uniform(-0.3, 0.3) * s
    th = rng.uniform(1.5, 3.0) * s
    m = p.mask()
    draw.rect(m, x - 0.06 * s - 0.5, y - th, x + 0.06 * s + 0.5, y, 255)
    for _ in range(int(rng.integers(3, 7))):
        r = rng.uniform(0.4, 0.9) * s
        draw.circle(m, (x + rng.normal(0, 0.5 * r), y - th - rng.normal(0, 0.4 * r)), r, 255)
    p.fill(m, _foliage(rng, rng.uniform(70, 135)), C["vegetation"])


def _person(p: Painter, rng, sc: _Scene, x: float, y: float, cls: int, s: float, seated: bool = False) -> None:
    """A pedestrian (or a rider when ``seated``) standing at (x, y) of height ~ 1.15 s."""
    hgt = 1.15 * s * (0.75 if seated else 1.0)
    skin = np.array([rng.uniform(150, 235), rng.uniform(110, 190), rng.uniform(80, 160)])
    top_c = rng.uniform(20, 240, 3)
    low_c = rng.uniform(20, 160, 3)
    hw = 0.13 * s
    m = p.mask()
    head = (x, y - hgt + 0.09 * s)
    draw.circle(m, head, 0.09 * s + 0.3, 255)
    torso = [(x - hw, y - hgt + 0.18 * s), (x + hw, y - hgt + 0.18 * s), (x + hw * 0.85, y - hgt + 0.62 * s), (x - hw * 0.85, y - hgt + 0.62 * s)]
    draw.poly(m, torso, 255)
    lw = max(1.0, 0.08 * s)
    hip = y - hgt + 0.6 * s
    if seated:
        draw.thick_line(m, (x, hip), (x + 0.25 * s, hip + 0.1 * s), 255, lw)
        draw.thick_line(m, (x + 0.25 * s, hip + 0.1 * s), (x + 0.2 * s, y), 255, lw)
    else:
        spread = rng.uniform(0.0, 0.12) * s
        draw.thick_line(m, (x - 0.05 * s, hip), (x - 0.05 * s - spread, y), 255, lw)
        draw.thick_line(m, (x + 0.05 * s, hip), (x + 0.05 * s + spread, y), 255, lw)
    for sx in (-1, 1):
        draw.thick_line(m, (x + sx * hw, y - hgt + 0.2 * s), (x + sx * (hw + 0.06 * s), y - hgt + 0.55 * s), 255, lw * 0.8)

    def tex(x0, y0, bw, bh):
        out = np.empty((bh, bw, 3), np.float32)
        rows = np.arange(y0, y0 + bh, dtype=np.float32)[:, None]
        out[:] = np.where((rows < head[1] + 0.09 * s)[:, :, None], skin, np.where((rows < hip)[:, :, None], top_c, low_c))
        return out + rng.standard_normal((bh, bw, 1), dtype=np.float32) * 6

    p.fill(m, tex, cls)


def _two_wheeler(p: Painter, rng, sc: _Scene, x: float, y: float, motor: bool) -> None:
    s = sc.scale(y)
    r = 0.22 * s
    m = p.mask()
    xa, xb = x - 0.4 * s, x + 0.4 * s
    cy = y - r
    if motor:
        for xc in (xa, xb):
            draw.circle(m, (xc, cy), r, 255)
        draw.poly(m, [(xa, cy - 0.3 * r), (xb - 0.2 * r, cy - 0.6 * r), (xb, cy - 1.4 * r), (x, cy - 1.5 * r), (xa - 0.3 * r, cy - 1.0 * r)], 255)
        body = _shaded(rng, rng.uniform(20, 220, 3))

        def tex(bx, by, bw, bh):
            out = body(bx, by, bw, bh)
            yy, xx = np.mgrid[by : by + bh, bx : bx + bw].astype(np.float32)
            for xc in (xa, xb):  # dark tyres, grey hubs
                d2 = (xx - xc) ** 2 + (yy - cy) ** 2
                out[d2 < (r * 1.05) ** 2] = (28, 28, 30)
                out[d2 < (r * 0.35) ** 2] = (150, 150, 155)
            return out

        cls = C["motorcycle"]
    else:
        t = max(1, int(round(0.05 * s)))
        for xc in (xa, xb):
            draw.circle(m, (xc, cy), r, 255, thickness=t)
        lw = max(1.0, 0.05 * s)
        for a, b in [((xa, cy), (x, cy)), ((x, cy), (xb - 0.3 * r, cy - 1.3 * r)), ((xa, cy), (x - 0.2 * r, cy - 1.3 * r)),
                     ((x - 0.2 * r, cy - 1.3 * r), (xb - 0.3 * r, cy - 1.3 * r)), ((xb - 0.3 * r, cy - 1.3 * r), (xb, cy))]:
            draw.thick_line(m, a, b, 255, lw)
        tex = rng.uniform(30, 220, 3)
        cls = C["bicycle"]
    p.fill(m, tex, cls)


def _vehicle(p: Painter, rng, sc: _Scene, x: float, y: float, kind: str) -> None:
    """Rear view of a car, truck or bus with its base centre at (x, y)."""
    s = sc.scale(y)
    if kind == "car":
        vw, vh = rng.uniform(1.1, 1.35) * s, rng.uniform(0.85, 1.05) * s
    elif kind == "truck":
        vw, vh = rng.uniform(1.4, 1.7) * s, rng.uniform(1.6, 2.3) * s
    else:
        vw, vh = rng.uniform(1.5, 1.75) * s, rng.uniform(1.9, 2.3) * s
    x0, x1, top = x - vw / 2, x + vw / 2, y - vh
    m = p.mask()
    if kind == "car":
        draw.rect(m, x0, y - 0.6 * vh, x1, y - 0.1 * vh, 255)
        draw.poly(m, [(x0 + 0.08 * vw, y - 0.58 * vh), (x1 - 0.08 * vw, y - 0.58 * vh), (x1 - 0.18 * vw, top), (x0 + 0.18 * vw, top)], 255)
    else:
        draw.rect(m, x0, top, x1, y - 0.12 * vh, 255)
    for sx in (x0 + 0.06 * vw, x1 - 0.22 * vw):  # wheels
        draw.rect(m, sx, y - 0.16 * vh, sx + 0.16 * vw, y, 255)
    paint = rng.uniform(20, 240, 3)
    if kind == "bus":
        paint = np.array([(210, 40, 40), (240, 190, 30), (40, 90, 190), (235, 235, 230), (40, 150, 80)][int(rng.integers(5))], np.float32)

    def tex(bx, by, bw, bh):
        out = _shaded(rng, paint, 1.1, 0.8)(bx, by, bw, bh)
        rows = np.arange(by, by + bh, dtype=np.float32)[:, None]
        cols = np.arange(bx, bx + bw, dtype=np.float32)[None, :]
        glass = np.array([45, 55, 70], np.float32)
        if kind == "car":
            win = (rows > top + 0.08 * vh) & (rows < y - 0.62 * vh) & (cols > x0 + 0.22 * vw) & (cols < x1 - 0.22 * vw)
            lights = (rows > y - 0.55 * vh) & (rows < y - 0.43 * vh) & ((cols < x0 + 0.18 * vw) | (cols > x1 - 0.18 * vw))
            out[win] = glass
            out[lights] = (220, 30, 30)
            plate = (rows > y - 0.38 * vh) & (rows < y - 0.28 * vh) & (np.abs(cols - x) < 0.14 * vw)
            out[plate] = (230, 230, 220)
        elif kind == "bus":
            win = (rows > top + 0.12 * vh) & (rows < top + 0.5 * vh) & (cols > x0 + 0.08 * vw) & (cols < x1 - 0.08 * vw)
            sign = (rows > top + 0.03 * vh) & (rows < top + 0.1 * vh) & (cols > x0 + 0.2 * vw) & (cols < x1 - 0.2 * vw)
            out[win] = glass
            out[sign] = (250, 160, 30)
            lights = (rows > y - 0.35 * vh) & (rows < y - 0.25 * vh) & ((cols < x0 + 0.12 * vw) | (cols > x1 - 0.12 * vw))
            out[lights] = (220, 30, 30)
        else:  # truck: box with door seam, bumper
            seam = np.abs(cols - x) < max(0.6, 0.01 * vw)
            out[np.broadcast_to(seam, out.shape[:2]) & (rows < y - 0.2 * vh)] *= 0.6
            bump = (rows > y - 0.2 * vh) & (rows < y - 0.12 * vh)
            out[np.broadcast_to(bump, out.shape[:2])] = (40, 40, 40)
        wheels = (rows > y - 0.16 * vh) & ((cols < x0 + 0.22 * vw) | (cols > x1 - 0.22 * vw))
        out[wheels] = (25, 25, 27)
        return out

    p.fill(m, tex, C[kind])


def _train(p: Painter, rng, sc: _Scene) -> None:
    y = sc.yh + rng.uniform(0.06, 0.2) * (sc.h - sc.yh)
    s = sc.scale(y)
    vh = 2.6 * s
    x0 = rng.uniform(-0.3, 0.2) * sc.w
    x1 = x0 + rng.uniform(0.6, 1.2) * sc.w
    m = p.mask()
    draw.poly(m, [(x0, y), (x1, y), (x1, y - vh * 0.85), (x1 - 0.3 * vh, y - vh), (x0, y - vh)], 255)
    paint = np.array([(230, 230, 235), (40, 80, 160), (200, 40, 40), (150, 150, 155)][int(rng.integers(4))], np.float32)
    stripe = rng.uniform(20, 240, 3)

    def tex(bx, by, bw, bh):
        out = _shaded(rng, paint, 1.05, 0.85)(bx, by, bw, bh)
        rows = np.arange(by, by + bh, dtype=np.float32)[:, None]
        cols = np.arange(bx, bx + bw, dtype=np.float32)[None, :]
        win = (rows > y - 0.75 * vh) & (rows < y - 0.5 * vh) & ((cols % (0.6 * vh + 2)) < 0.4 * vh + 1)
        out[win] = (40, 50, 65)
        band = np.broadcast_to((rows > y - 0.4 * vh) & (rows < y - 0.3 * vh), out.shape[:2])
        out[band] = stripe
        return out

    p.fill(m, tex, C["train"])


def _ignore_clutter(p: Painter, rng, sc: _Scene) -> None:
    """Things no class covers (bins, crates, posters): drawn, labelled 255."""
    side = -1 if rng.random() < 0.5 else 1
    y = sc.yh + rng.uniform(0.2, 0.9) * (sc.h - sc.yh)
    s = sc.scale(y)
    x = (sc.edge(y, side) + sc.outer(y, side)) / 2
    m = p.mask()
    if rng.random() < 0.5:
        draw.rect(m, x - 0.2 * s, y - 0.6 * s, x + 0.2 * s, y, 255)
    else:
        draw.ellipse(m, (x, y - 0.3 * s), (0.25 * s, 0.3 * s), 255)
    p.fill(m, _shaded(rng, rng.uniform(30, 230, 3)), IGNORE_INDEX)


def choose_classes(rng: np.random.Generator, forced, prob_scale: dict | None = None) -> set:
    want = {"road", "sidewalk", "building", "sky"}
    for name, prob in CLASS_PROB.items():
        if name in forced or rng.random() < prob * (prob_scale or {}).get(name, 1.0):
            want.add(name)
    if "rider" in want and not ({"motorcycle", "bicycle"} & want):
        want.add("bicycle" if rng.random() < 0.6 else "motorcycle")
    if "traffic light" in want or "traffic sign" in want:
        want.add("pole")
    return want


def make_image(rng: np.random.Generator, seg_size, forced=(), profile: str = "demo") -> tuple[np.ndarray, np.ndarray]:
    """One street image (uint8 RGB) and its label map (uint8, 0..18 and 255).

    ``forced``: class names the image must show (drawn unoccluded if the scene hid them);
    ``profile`` hard: rare classes rarer and the ego hood twice as often (:mod:`.hard`).
    """
    is_hard = profile == "hard"
    w, h = image_size(rng, seg_size)
    forced = set(forced)
    want = choose_classes(rng, forced, hard.SEG_CLASS_PROB_SCALE if is_hard else None)
    p = Painter(h, w)
    sc = _Scene(rng, w, h)
    _sky_and_far(p, rng, sc, want)
    _ground(p, rng, sc, want)
    if "train" in want:
        _train(p, rng, sc)
    for cls in ("wall", "fence"):
        if cls in want:
            _wall_or_fence(p, rng, sc, cls)
    # Objects, far to near.
    items = []
    yh, H = sc.yh, sc.h

    def ground_y(lo=0.05, hi=1.0):
        return yh + rng.uniform(lo, hi) ** 1.3 * (H - yh)

    if "pole" in want:
        for _ in range(int(rng.integers(1, 4))):
            items.append((ground_y(0.1, 0.9), "pole", -1 if rng.random() < 0.5 else 1))
    if "vegetation" in want:
        for _ in range(int(rng.integers(0, 3))):
            items.append((ground_y(0.05, 0.7), "tree", -1 if rng.random() < 0.5 else 1))
    if "person" in want:
        for _ in range(int(rng.integers(1, 4))):
            items.append((ground_y(0.1, 0.9), "person", -1 if rng.random() < 0.5 else 1))
    for kind in ("car", "truck", "bus"):
        if kind in want:
            for _ in range(int(rng.integers(1, 4 if kind == "car" else 2))):
                items.append((ground_y(0.08, 0.85), kind, 0))
    for kind in ("rider", "motorcycle", "bicycle"):
        if kind in want and not (kind != "rider" and "rider" in want and rng.random() < 0.5):
            items.append((ground_y(0.15, 0.85), kind, -1 if rng.random() < 0.5 else 1))
    if rng.random() < 0.25:
        items.append((ground_y(0.2, 0.9), "clutter", 0))
    items.sort(key=lambda it: it[0])
    for y, kind, side in items:
        _draw_item(p, rng, sc, y, kind, side, want)
    # Whatever was forced but ended up hidden gets one more, unoccluded, near the camera.
    present = set(np.unique(p.lab).tolist())
    for name in sorted(forced):
        for attempt in range(8):
            if C[name] in present:
                break
            if name in ("wall", "fence"):
                _wall_or_fence(p, rng, sc, name)
            elif name == "train":
                _train(p, rng, sc)
            elif name == "terrain":
                m = p.mask()
                draw.ellipse(m, (rng.uniform(0.1, 0.9) * w, H - 0.05 * H), (0.15 * w, 0.06 * H), 255)
                p.fill(m, _grass(rng, (90, 120, 60)), C["terrain"])
            else:  # nearer and nearer to the horizon, where both sidewalks are in view
                y = yh + (0.6 - 0.07 * attempt) * (H - yh)
                kind = {"vegetation": "tree", "traffic light": "pole", "traffic sign": "pole"}.get(name, name)
                _draw_item(p, rng, sc, y, kind, -1 if attempt % 2 else 1, want | {name}, must={name})
            present = set(np.unique(p.lab).tolist())
    # Ego-vehicle bonnet (ignored), as in dash-cam footage.
    if rng.random() < (hard.SEG_HOOD_PROB if is_hard else 0.25):
        m = p.mask()
        hb = rng.uniform(0.06, 0.14) * H
        draw.ellipse(m, (w / 2 + rng.normal(0, 0.05 * w), H + hb * 0.6), (0.8 * w, hb * 1.6), 255)
        p.fill(m, _shaded(rng, rng.uniform(10, 90, 3), 1.3, 0.8), IGNORE_INDEX)
    img = draw.to_uint8(p.img + 0.5)
    label = p.lab
    if rng.random() < 0.5:  # one-pixel ignore ring inside object boundaries
        thing = np.isin(label, THINGS).astype(np.uint8)
        ring = (thing > 0) & (cv2.erode(thing, np.ones((3, 3), np.uint8)) == 0)
        label = label.copy()
        label[ring] = IGNORE_INDEX
    img = draw.add_grain(img, rng, rng.uniform(1.5, 4))
    img = draw.light_jitter(img, rng)
    return img, label


def _draw_item(p: Painter, rng, sc: _Scene, y: float, kind: str, side: int, want: set, must=()) -> None:
    w = sc.w
    if kind == "pole":
        _pole(p, rng, sc, y, side, want, must)
    elif kind == "tree":
        _tree(p, rng, sc, y, side)
    elif kind == "person":
        x = sc.edge(y, side) + rng.uniform(0.2, 0.9) * (sc.outer(y, side) - sc.edge(y, side))
        _person(p, rng, sc, x, y, C["person"], sc.scale(y))
    elif kind in ("car", "truck", "bus"):
        lo, hi = sc.edge(y, -1), sc.edge(y, 1)
        x = rng.uniform(lo + 0.2 * (hi - lo), hi - 0.2 * (hi - lo))
        _vehicle(p, rng, sc, x, y, kind)
    elif kind in ("rider", "motorcycle", "bicycle"):
        e = sc.edge(y, side)
        x = e - side * rng.uniform(0.2, 0.6) * sc.scale(y)
        x = float(np.clip(x, 0.02 * w, 0.98 * w))
        motor = kind == "motorcycle" or (kind == "rider" and "motorcycle" in want and ("bicycle" not in want or rng.random() < 0.5))
        _two_wheeler(p, rng, sc, x, y, motor)
        if kind == "rider":
            _person(p, rng, sc, x - 0.1 * sc.scale(y), y - 0.3 * sc.scale(y), C["rider"], sc.scale(y), seated=True)
    elif kind == "train":
        _train(p, rng, sc)
    elif kind == "clutter":
        _ignore_clutter(p, rng, sc)
