"""Detection images in the spirit of Tsinghua-Tencent 100K: street views with small traffic signs.

A scene has sky, buildings with windows and shop signs, trees, a road in perspective with lane
marks, sidewalks, lamp posts, cars and traffic lights; red, blue and yellow discs and boxes serve
as distractors. Signs of a dozen TT100K categories (:data:`signs.DEMO_SIGNS`) stand on poles
beside the road (sometimes two to a pole), hang from gantries or sit on walls, 8 to 64 px across
(log-uniform, so a third are under 16 px); 0 to 6 per image, none in about one image in ten.
Boxes are the exact boxes of the warped sign outlines, in float pixels.
"""

from __future__ import annotations

import numpy as np

from . import draw, hard, signs
from ..classes import TT100K_CATEGORIES

# Relative frequencies of the demo's sign categories (TT100K is long-tailed too).
SIGN_WEIGHTS = {"pn": 3.0, "pne": 2.5, "i5": 2.0, "pl50": 2.0, "io": 2.0, "pl80": 1.5, "p11": 1.5, "pl40": 1.5,
                "pl30": 1.0, "w57": 1.0, "ip": 1.0, "p26": 1.0}
MIN_SIGN, MAX_SIGN = 8.0, 64.0  # the default data.demo.det_sign_px
EMPTY_FRACTION = 0.1
HARD_EMPTY_FRACTION = 0.06
MAX_SIGNS = 6


def categories() -> list[dict]:
    """All 45 TT100K categories in id order, as the organisers' COCO files list them."""
    return [{"id": i, "name": n, "supercategory": "traffic_sign"} for i, n in enumerate(TT100K_CATEGORIES)]


def image_size(rng: np.random.Generator, size_range) -> tuple[int, int]:
    lo, hi = int(size_range[0]), int(size_range[1])
    if rng.random() < 0.3:
        s = int(rng.integers(lo, hi + 1))
        return s, s
    return int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))


class _Street:
    """Scene geometry shared by the drawing steps."""

    def __init__(self, rng: np.random.Generator, w: int, h: int):
        self.rng, self.w, self.h = rng, w, h
        self.yh = rng.uniform(0.3, 0.55) * h  # horizon
        self.xv = rng.uniform(0.3, 0.7) * w  # vanishing point
        self.left_bottom = self.xv - rng.uniform(0.5, 1.1) * w
        self.right_bottom = self.xv + rng.uniform(0.5, 1.1) * w
        self.half_top = rng.uniform(0.01, 0.03) * w

    def edge(self, y: float, side: int) -> float:
        """x of the road's left (side -1) or right (+1) edge at row y."""
        t = (y - self.yh) / (self.h - self.yh)
        bottom = self.left_bottom if side < 0 else self.right_bottom
        top = self.xv + side * self.half_top
        return top + (bottom - top) * t

    def depth(self, y: float) -> float:
        """Pixels per metre-ish at row y (0 at the horizon)."""
        return max(0.0, (y - self.yh)) / (self.h - self.yh)


def _background(rng: np.random.Generator, st: _Street) -> np.ndarray:
    w, h, yh = st.w, st.h, st.yh
    sky_top = draw.hsv_colour(rng.uniform(195, 230), rng.uniform(0.25, 0.7), rng.uniform(0.65, 0.95))
    if rng.random() < 0.3:  # overcast
        g = rng.uniform(150, 215)
        sky_top = np.array([g, g, g + 8])
    img = np.empty((h, w, 3), np.uint8)
    iyh = int(yh)
    img[:iyh] = draw.to_uint8(draw.vertical_gradient(iyh, 1, sky_top, sky_top * 0.6 + 95))
    ground = rng.uniform(90, 140)
    img[iyh:] = draw.to_uint8(draw.vertical_gradient(h - iyh, 1, (ground, ground, ground - 10), (ground * 0.8,) * 3))
    return img


def _buildings(img: np.ndarray, rng: np.random.Generator, st: _Street) -> None:
    w, h, yh = st.w, st.h, st.yh
    x = -rng.uniform(0, 0.1 * w)
    while x < w:
        bw = rng.uniform(0.06, 0.28) * w
        top = yh - rng.uniform(0.04, 0.9) * yh
        bottom = yh + rng.uniform(0.0, 0.05) * h
        if rng.random() < 0.25:  # tree line instead of a building
            for _ in range(int(rng.integers(2, 6))):
                r = rng.uniform(0.3, 0.7) * bw / 2
                draw.circle(img, (x + rng.uniform(0, bw), yh - rng.uniform(0, 0.2) * yh), r,
                            draw.hsv_colour(rng.uniform(80, 140), rng.uniform(0.4, 0.8), rng.uniform(0.25, 0.55)))
        else:
            c = rng.uniform(70, 220, 3) if rng.random() < 0.6 else np.array([rng.uniform(150, 210)] * 3) * [1, 0.95, 0.85]
            draw.rect(img, x, top, x + bw, bottom, c)
            step_y, step_x = rng.uniform(10, 26), rng.uniform(10, 24)
            ww, wh = step_x * rng.uniform(0.4, 0.7), step_y * rng.uniform(0.4, 0.7)
            win = c * rng.uniform(0.35, 0.7) if rng.random() < 0.7 else np.array([60, 80, 110])
            for wy in np.arange(top + step_y * 0.6, bottom - step_y, step_y):
                for wx in np.arange(x + step_x * 0.4, x + bw - step_x * 0.6, step_x):
                    draw.rect(img, wx, wy, wx + ww, wy + wh, win, aa=False)
            # Shop signs and round logos low on the facade: red/blue/yellow distractors.
            if rng.random() < 0.6:
                sy = bottom - rng.uniform(0.08, 0.25) * (bottom - top)
                sh = rng.uniform(6, 30)
                sc = [(200, 30, 30), (30, 70, 170), (240, 200, 30), (30, 140, 60), (240, 240, 240)][int(rng.integers(5))]
                x0, x1 = x + rng.uniform(0, 0.2) * bw, x + rng.uniform(0.6, 1.0) * bw
                draw.rect(img, x0, sy, x1, sy + sh, sc)
                for tx in np.arange(x0 + 3, x1 - 6, rng.uniform(5, 9)):
                    draw.rect(img, tx, sy + sh * 0.3, tx + 3, sy + sh * 0.7, (250, 250, 250) if sum(sc) < 600 else (30, 30, 30), aa=False)
            if rng.random() < 0.3:
                r = rng.uniform(4, 28)
                draw.circle(img, (x + rng.uniform(0.2, 0.8) * bw, top + rng.uniform(0.2, 0.7) * (bottom - top)), r,
                            [(210, 30, 30), (30, 80, 190), (250, 250, 245)][int(rng.integers(3))])
        x += bw + rng.uniform(-0.02, 0.05) * w


def _road(img: np.ndarray, rng: np.random.Generator, st: _Street) -> None:
    w, h, yh = st.w, st.h, st.yh
    # Sidewalks (wider polygons first), then the road over them.
    kerb = rng.uniform(0.15, 0.5)
    for side in (-1, 1):
        outer = st.xv + side * st.half_top * 3 + (st.edge(h, side) - st.xv) * (1 + kerb)
        pts = [(st.xv + side * st.half_top, yh), (st.xv + side * st.half_top * 3, yh), (outer, h), (st.edge(h, side), h)]
        g = rng.uniform(140, 200)
        draw.poly(img, pts, (g, g * 0.97, g * 0.92))
    road = [(st.edge(yh, -1), yh), (st.edge(yh, 1), yh), (st.edge(h, 1), h), (st.edge(h, -1), h)]
    g = rng.uniform(55, 105)
    draw.poly(img, road, (g, g, g + 3))
    # Dashed centre line and edge lines, in perspective.
    lane = (235, 235, 225) if rng.random() < 0.7 else (240, 200, 40)
    t = 0.02
    while t < 1.0:
        t1 = min(1.0, t + 0.06 + 0.06 * t)
        ya, yb = yh + t * (h - yh), yh + t1 * (h - yh)
        xa, xb = (st.edge(ya, -1) + st.edge(ya, 1)) / 2, (st.edge(yb, -1) + st.edge(yb, 1)) / 2
        wa, wb = 1 + 0.012 * w * t, 1 + 0.012 * w * t1
        draw.poly(img, [(xa - wa / 2, ya), (xa + wa / 2, ya), (xb + wb / 2, yb), (xb - wb / 2, yb)], lane)
        t = t1 + 0.05 + 0.08 * t1
    for side in (-1, 1):
        draw.poly(img, [(st.edge(yh, side), yh), (st.edge(yh, side) - side, yh), (st.edge(h, side) - side * 0.01 * w, h), (st.edge(h, side), h)], (225, 225, 220))


def _clutter(img: np.ndarray, rng: np.random.Generator, st: _Street) -> None:
    """Cars on the road, lamp posts, trees and traffic lights: things that are not signs."""
    w, h, yh = st.w, st.h, st.yh
    for _ in range(int(rng.integers(0, 5))):  # cars, rear view, far ones first
        y = yh + rng.uniform(0.05, 0.9) ** 1.5 * (h - yh)
        s = st.depth(y)
        cw = s * rng.uniform(0.2, 0.3) * w
        cx = rng.uniform(st.edge(y, -1) + cw / 2, st.edge(y, 1) - cw / 2) if st.edge(y, 1) - st.edge(y, -1) > cw else st.xv
        ch = cw * rng.uniform(0.7, 0.95)
        c = rng.uniform(20, 240, 3)
        draw.rect(img, cx - cw / 2, y - ch * 0.55, cx + cw / 2, y, c)
        draw.poly(img, [(cx - cw * 0.4, y - ch * 0.55), (cx + cw * 0.4, y - ch * 0.55), (cx + cw * 0.32, y - ch), (cx - cw * 0.32, y - ch)], c * 0.9)
        draw.poly(img, [(cx - cw * 0.34, y - ch * 0.58), (cx + cw * 0.34, y - ch * 0.58), (cx + cw * 0.28, y - ch * 0.92), (cx - cw * 0.28, y - ch * 0.92)], (50, 60, 75))
        for sx in (-1, 1):
            draw.rect(img, cx + sx * cw * 0.42, y - ch * 0.42, cx + sx * cw * 0.3, y - ch * 0.32, (220, 30, 30))
        draw.rect(img, cx - cw * 0.15, y - ch * 0.22, cx + cw * 0.15, y - ch * 0.12, (235, 235, 225))
    for _ in range(int(rng.integers(1, 5))):  # lamp posts / utility poles, maybe with traffic lights
        side = -1 if rng.random() < 0.5 else 1
        y = yh + rng.uniform(0.05, 1.0) * (h - yh)
        s = st.depth(y)
        x = st.edge(y, side) + side * rng.uniform(0.02, 0.15) * w * s
        top = y - rng.uniform(0.5, 0.9) * h * s - 10
        pw = max(1.0, 0.008 * w * s)
        grey = rng.uniform(60, 150)
        draw.rect(img, x - pw / 2, top, x + pw / 2, y, (grey, grey, grey))
        if rng.random() < 0.5:
            arm = -side * rng.uniform(0.05, 0.2) * w * s
            draw.thick_line(img, (x, top), (x + arm, top), (grey, grey, grey), pw)
            if rng.random() < 0.6:  # traffic light hanging from the arm: red/yellow/green discs
                bw, bh = 0.02 * w * s + 3, 0.06 * w * s + 8
                bx = x + arm
                draw.rect(img, bx - bw / 2, top, bx + bw / 2, top + bh, (25, 25, 25))
                lit = int(rng.integers(3))
                for k, lc in enumerate([(230, 40, 30), (240, 190, 30), (40, 210, 90)]):
                    col = lc if k == lit else np.array(lc) * 0.3
                    draw.circle(img, (bx, top + bh * (k + 0.5) / 3), bw * 0.35, col)
            else:
                draw.ellipse(img, (x + arm, top + 2), (max(2.0, 0.02 * w * s), max(1.0, 0.006 * w * s)), (230, 230, 200))
    for _ in range(int(rng.integers(0, 4))):  # roadside trees
        side = -1 if rng.random() < 0.5 else 1
        y = yh + rng.uniform(0.02, 0.7) * (h - yh)
        s = st.depth(y)
        x = st.edge(y, side) + side * rng.uniform(0.1, 0.3) * w * s
        th = rng.uniform(0.3, 0.6) * h * s + 6
        draw.rect(img, x - 0.006 * w * s - 1, y - th, x + 0.006 * w * s + 1, y, (90, 65, 40))
        for _ in range(int(rng.integers(3, 7))):
            r = rng.uniform(0.05, 0.12) * w * s + 3
            draw.circle(img, (x + rng.normal(0, r * 0.6), y - th - rng.normal(0, r * 0.5)), r,
                        draw.hsv_colour(rng.uniform(75, 140), rng.uniform(0.45, 0.85), rng.uniform(0.25, 0.6)))
    # Loose coloured blobs and boxes (balloons, bins, posters): hard negatives for a sign detector.
    draw.random_clutter(img, rng, int(rng.integers(2, 8)), (6, 0.06 * w), region=(0, yh * 0.5, w, h),
                        palette=[(200, 30, 30), (30, 70, 170), (240, 200, 30), (240, 240, 240)])


def _overlaps(box, boxes, margin: float = 2.0) -> bool:
    x, y, bw, bh = box
    for ox, oy, ow, oh in boxes:
        if x < ox + ow + margin and ox < x + bw + margin and y < oy + oh + margin and oy < y + bh + margin:
            return True
    return False


def _place_signs(img: np.ndarray, rng: np.random.Generator, st: _Street, names: list[str],
                 hard_sizes: bool = False, sign_px=(MIN_SIGN, MAX_SIGN)) -> list[tuple[str, list[float]]]:
    lo, hi = float(sign_px[0]), float(sign_px[1])
    w, h = st.w, st.h
    weights = np.array([SIGN_WEIGHTS.get(n, 1.0) for n in names], np.float64)
    weights /= weights.sum()
    if rng.random() < (HARD_EMPTY_FRACTION if hard_sizes else EMPTY_FRACTION):
        return []
    n = int(rng.choice(np.arange(1, MAX_SIGNS + 1), p=[0.25, 0.25, 0.18, 0.14, 0.1, 0.08]))
    placed: list[tuple[str, list[float]]] = []
    boxes: list[list[float]] = []
    supports: list[tuple] = []
    pending: list[tuple] = []
    tries = 0
    while len(placed) < n and tries < 40:
        tries += 1
        size = hard.sign_size(rng, lo, hi) if hard_sizes else draw.loguniform(rng, lo, hi)
        name = names[int(rng.choice(len(names), p=weights))]
        angle, squeeze = rng.normal(0, 2.5), rng.uniform(0.82, 1.0)
        mode = rng.random()
        stack = 1
        if mode < 0.7:  # on a pole beside the road; nearer (lower) poles carry bigger signs
            side = -1 if rng.random() < 0.5 else 1
            y_base = st.yh + size / rng.uniform(0.06, 0.16)
            x = st.edge(min(y_base, h), side) + side * rng.uniform(0.0, 0.25) * w * st.depth(min(y_base, h))
            cy = y_base - size * rng.uniform(2.0, 4.5)
            stack = 2 if rng.random() < 0.25 else 1
            arm_to = None
        elif mode < 0.85:  # on an overhead arm reaching out from the side, high above the road
            x = rng.uniform(0.05, 0.95) * w
            cy = st.yh - rng.uniform(0.0, 0.6) * st.yh
            y_base = None
            arm_to = 0.0 if x < w / 2 else float(w)
        else:  # on a wall or fence, anywhere
            x, cy = rng.uniform(0, w), rng.uniform(0.1, 0.9) * h
            y_base = None
            arm_to = None
        items = []
        for k in range(stack):
            nm = name if k == 0 else names[int(rng.choice(len(names), p=weights))]
            rgb, alpha, px0, py0, box = signs.warp_sign(nm, size, angle, squeeze, x, cy + k * size * 1.1)
            items.append((nm, rgb, alpha, px0, py0, box))
        items = items[: n - len(placed)]
        bxs = [it[5] for it in items]
        if any(b[0] < 1 or b[1] < 1 or b[0] + b[2] > w - 1 or b[1] + b[3] > h - 1 for b in bxs):
            continue
        if any(min(b[2], b[3]) < lo - 1e-6 for b in bxs):
            continue
        if any(_overlaps(b, boxes) for b in bxs):
            continue
        grey = rng.uniform(90, 170)
        if y_base is not None:  # the pole, from the ground up to the top sign
            pw = max(1.5, size * 0.09)
            supports.append((x - pw / 2, cy, x + pw / 2, min(y_base, h + 5), grey))
        elif arm_to is not None:  # an arm from the image side to the sign
            aw = max(1.5, size * 0.12)
            supports.append((min(x, arm_to), cy - size * 0.3 - aw / 2, max(x, arm_to), cy - size * 0.3 + aw / 2, grey))
        gain = rng.uniform(0.7, 1.1)
        fade = rng.uniform(0.0, 0.25)
        for nm, rgb, alpha, px0, py0, box in items:
            col = rgb.astype(np.float32) * gain
            col = col * (1 - fade) + col.mean(axis=2, keepdims=True) * fade
            pending.append((col, alpha, px0, py0))
            placed.append((nm, [round(v, 2) for v in box]))
            boxes.append(box)
    # Poles and arms first, so none of them hides part of an annotated sign.
    for x0, y0, x1, y1, grey in supports:
        draw.rect(img, x0, y0, x1, y1, (grey, grey, grey * 1.02))
    for col, alpha, px0, py0 in pending:
        draw.blend(img, col, alpha, px0, py0)
    return placed


def make_image(rng: np.random.Generator, size_range, names=signs.DEMO_SIGNS,
               profile: str = "demo", sign_px=(MIN_SIGN, MAX_SIGN)) -> tuple[np.ndarray, list[tuple[str, list[float]]]]:
    """One street image and its signs as (category name, [x, y, w, h]), sides within ``sign_px``;
    ``profile`` hard: TT100K's sign sizes and unannotated direction boards and traffic lights
    (:mod:`.hard`)."""
    w, h = image_size(rng, size_range)
    st = _Street(rng, w, h)
    img = _background(rng, st)
    _buildings(img, rng, st)
    _road(img, rng, st)
    _clutter(img, rng, st)
    if profile == "hard":
        hard.distractors(img, rng, st.yh)
    anns = _place_signs(img, rng, st, list(names), hard_sizes=profile == "hard", sign_px=sign_px)
    # Clouds, stains and uneven illumination, plus sensor grain (one luminance field, added in int16).
    noise = draw.smooth_noise(rng, h, w, rng.uniform(24, 64)) * np.float32(rng.uniform(5, 10))
    noise += draw.grain(rng, h, w, rng.uniform(2, 6))[:, :, 0]
    img = np.clip(img.astype(np.int16) + noise.astype(np.int16)[:, :, None], 0, 255).astype(np.uint8)
    img = draw.light_jitter(img, rng, gain=(0.75, 1.15))
    return img, anns


def coco_annotation(ann_id: int, image_id: int, name: str, box: list[float]) -> dict:
    x, y, bw, bh = box
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": TT100K_CATEGORIES.index(name),
        "bbox": [x, y, bw, bh],
        "area": round(bw * bh, 2),
        "iscrowd": 0,
        "segmentation": [[x, y, round(x + bw, 2), y, round(x + bw, 2), round(y + bh, 2), x, round(y + bh, 2)]],
    }

