"""Classification images in the spirit of Stanford Cars: one car "model" per class.

A model is a body shape (a parametric side-view silhouette of a family: sedan, SUV, hatchback,
pickup, van, coupe, wagon; later repeats of a family get other proportions) and a paint colour.
Models are laid out on a shape x colour grid so that every shape comes in several colours and
every colour is worn by several shapes (given enough classes): neither cue alone names a model.
Each image shows one car, facing left or right, with mild rotation and perspective, at varied
scale and position, on a cluttered background (street, abstract shapes or a studio), with
lighting jitter, grain and JPEG compression.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from . import draw

FAMILIES = ("sedan", "suv", "hatchback", "pickup", "van", "coupe", "wagon")

# Paint colours, most distinct first (small class counts use the head of the list).
PAINTS = {
    "red": (200, 30, 35),
    "blue": (30, 70, 190),
    "white": (232, 232, 228),
    "yellow": (240, 200, 30),
    "black": (28, 28, 32),
    "green": (40, 150, 60),
    "orange": (245, 120, 20),
    "purple": (120, 50, 160),
    "cyan": (40, 180, 210),
    "brown": (120, 75, 40),
    "pink": (240, 130, 170),
    "grey": (128, 128, 132),
}

# Nominal proportions (car length ~ 1): clearance, body height, roof height, hood, trunk (rear deck),
# windscreen and rear-window run, wheel radius, side windows.
_NOMINAL = {
    "sedan": dict(length=1.00, clearance=0.07, body_h=0.19, roof_h=0.16, hood=0.30, trunk=0.22, wind=0.17, rear=0.15, wheel=0.082, windows=2),
    "suv": dict(length=0.96, clearance=0.12, body_h=0.24, roof_h=0.20, hood=0.25, trunk=0.0, wind=0.13, rear=0.05, wheel=0.11, windows=3, rails=True),
    "hatchback": dict(length=0.80, clearance=0.07, body_h=0.20, roof_h=0.18, hood=0.24, trunk=0.0, wind=0.17, rear=0.09, wheel=0.08, windows=2),
    "pickup": dict(length=1.10, clearance=0.13, body_h=0.23, roof_h=0.18, hood=0.27, trunk=0.0, wind=0.12, rear=0.0, wheel=0.11, windows=2, cab=0.26),
    "van": dict(length=1.00, clearance=0.08, body_h=0.27, roof_h=0.27, hood=0.11, trunk=0.0, wind=0.13, rear=0.02, wheel=0.085, windows=3),
    "coupe": dict(length=0.94, clearance=0.055, body_h=0.17, roof_h=0.13, hood=0.34, trunk=0.14, wind=0.21, rear=0.28, wheel=0.085, windows=1),
    "wagon": dict(length=1.03, clearance=0.07, body_h=0.19, roof_h=0.16, hood=0.28, trunk=0.0, wind=0.16, rear=0.04, wheel=0.082, windows=3),
}


def class_grid(n_classes: int) -> list[tuple[int, int]]:
    """(shape index, colour index) per class: every shape in several colours and vice versa.

    With C colours and S = ceil(N / C) shapes, class k gets shape k mod S and colour
    (k div S + shape) mod C, which never repeats a pair.
    """
    if n_classes < 1:
        raise ValueError("cls_classes must be >= 1")
    n_colours = min(len(PAINTS), max(2, math.ceil(math.sqrt(n_classes))))
    n_shapes = math.ceil(n_classes / n_colours)
    return [(k % n_shapes, (k // n_shapes + k % n_shapes) % n_colours) for k in range(n_classes)]


def shape_params(seed: int, shape: int) -> dict:
    """Proportions of body shape ``shape``: its family's nominal ones, varied after the first round."""
    family = FAMILIES[shape % len(FAMILIES)]
    p = dict(_NOMINAL[family], family=family)
    if shape >= len(FAMILIES):
        rng = draw.rng_for(seed, "cls-shape", shape)
        p["length"] *= rng.uniform(0.88, 1.12)
        for key in ("roof_h", "body_h"):
            p[key] *= rng.uniform(0.85, 1.15)
        p["wheel"] *= rng.uniform(0.85, 1.2)
        p["hood"] *= rng.uniform(0.85, 1.15)
        p["windows"] = int(rng.integers(1, 4))
    return p


def class_names(n_classes: int) -> list[str]:
    """Human-readable model names, e.g. ``red sedan`` (``red sedan 2`` for a later variant)."""
    names = []
    colours = list(PAINTS)
    for shape, col in class_grid(n_classes):
        family = FAMILIES[shape % len(FAMILIES)]
        variant = shape // len(FAMILIES)
        names.append(f"{colours[col]} {family}" + (f" {variant + 1}" if variant else ""))
    return names


def class_specs(seed: int, n_classes: int) -> list[dict]:
    colours = list(PAINTS)
    specs = []
    for (shape, col), name in zip(class_grid(n_classes), class_names(n_classes)):
        specs.append(dict(name=name, shape=shape_params(seed, shape), paint=np.array(PAINTS[colours[col]], np.float32)))
    return specs


# --------------------------------------------------------------------------- car drawing


def _outline(p: dict) -> tuple[list, list, float]:
    """Body outline and side-window polygon in car units (x forward, y up), and the roof height."""
    L, yb = p["length"], p["clearance"]
    yw = yb + p["body_h"]
    yr = yw + p["roof_h"]
    xwf = L - p["hood"]
    xrf = xwf - p["wind"]
    front = [(L - 0.03, yb), (L, yb + 0.045), (L, yw - 0.05), (L - 0.03, yw - 0.008), (xwf, yw), (xrf, yr)]
    if p["family"] == "pickup":
        xc = xrf - p["cab"]
        body = [(0.02, yb)] + front + [(xc + 0.02, yr), (xc, yr - 0.02), (xc, yw), (0.0, yw), (0.0, yb + 0.04)]
        win = [(xc + 0.025, yw + 0.015), (xc + 0.025, yr - 0.02), (xrf - 0.01, yr - 0.02), (xwf - 0.04, yw + 0.015)]
        return body, win, yr
    trunk = p["trunk"]
    xwr = max(trunk, 0.025)
    xrr = xwr + p["rear"]
    rear = [(xrr, yr), (xwr, yw)]
    if trunk >= 0.06:
        rear += [(0.02, yw - 0.01), (0.0, yw - 0.05)]
    else:
        rear += [(0.0, yw - 0.03)]
    body = [(0.02, yb)] + front + rear + [(0.0, yb + 0.04)]
    d = 0.016
    win = [(xwr + 0.05, yw + d), (xrr + 0.02, yr - d), (xrf - 0.012, yr - d), (xwf - 0.045, yw + d)]
    return body, win, yr


def draw_car(p: dict, paint: np.ndarray, px: float, rng: np.random.Generator,
             details: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Render a car facing right, ``px`` pixels per car unit: (rgb uint8, alpha uint8) canvases.

    ``details`` (the hard profile) fixes what tells close models apart: ``wheel`` = (spokes, rim
    colour, rim radius fraction) instead of a random style, and ``spoiler`` (a rear wing)."""
    body, win, yr = _outline(p)
    m = 0.03
    W = int(math.ceil((p["length"] + 2 * m) * px))
    H = int(math.ceil((yr + 2 * m) * px))

    def tp(points):
        return [((x + m) * px, (yr + m - y) * px) for x, y in points]

    alpha = np.zeros((H, W), np.uint8)
    draw.poly(alpha, tp(body), 255)
    wheel_r = p["wheel"]
    xr_w, xf_w = 0.2 * p["length"], 0.8 * p["length"]
    if p["family"] in ("van", "pickup"):
        xf_w = p["length"] - max(0.17, p["hood"] + 0.05) * p["length"]
        xf_w = min(xf_w, p["length"] - 0.14)
    for xw in (xr_w, xf_w):
        draw.circle(alpha, tp([(xw, wheel_r)])[0], wheel_r * px, 255)

    # Paint with vertical shading (lighter towards the belt line), blotches and a highlight line.
    yw = p["clearance"] + p["body_h"]
    t = np.linspace(0, 1, H, dtype=np.float32)[:, None, None]
    shade = 1.12 - 0.4 * t
    lum = paint.mean()
    base = paint[None, None, :] * shade + (18.0 if lum < 60 else 0.0) * (1 - t)
    rgb = base + draw.smooth_noise(rng, H, W, max(2.0, px * 0.08))[:, :, None] * 5.0
    rgb = np.broadcast_to(rgb, (H, W, 3)).astype(np.float32).copy()
    y_belt = (yr + m - yw) * px
    hl = min(255, lum + 70)
    draw.line(rgb, (m * px, y_belt + 0.02 * px), ((p["length"] + m) * px, y_belt + 0.02 * px), (hl, hl, hl), max(1, px * 0.006))

    dark = paint * 0.55
    # Side windows with a sky reflection gradient, split by pillars of body colour.
    glass = np.array([40, 52, 70], np.float32) * rng.uniform(0.8, 1.3)
    draw.poly(rgb, tp(win), glass)
    wx0, wx1 = win[0][0], win[3][0]
    gx0, gx1 = win[1][0], win[2][0]
    refl = tp([(gx0 + 0.3 * (gx1 - gx0), yr - 0.02), (gx0 + 0.45 * (gx1 - gx0), yr - 0.02), (wx0 + 0.5 * (wx1 - wx0), yw + 0.02), (wx0 + 0.32 * (wx1 - wx0), yw + 0.02)])
    draw.poly(rgb, refl, glass + 35)
    n_win = int(p["windows"])
    for i in range(1, n_win):
        f = i / n_win
        xa = wx0 + f * (wx1 - wx0)
        xb = gx0 + f * (gx1 - gx0)
        draw.thick_line(rgb, tp([(xa, yw)])[0], tp([(xb, yr)])[0], paint * 0.9, max(1.5, 0.028 * px))
        # door seam below the pillar
        draw.line(rgb, tp([(xa, yw)])[0], tp([(xa - 0.01, p["clearance"] + 0.03)])[0], dark, max(1, 0.005 * px))
        draw.rect(rgb, *tp([(xa + 0.03, yw - 0.035)])[0], *tp([(xa + 0.07, yw - 0.045)])[0], dark)
    if p.get("rails"):
        draw.thick_line(rgb, tp([(win[1][0], yr + 0.012)])[0], tp([(win[2][0], yr + 0.012)])[0], (35, 35, 35), max(1.5, 0.012 * px))
        draw.poly(alpha, [tp([(win[1][0], yr + 0.02)])[0], tp([(win[2][0], yr + 0.02)])[0], tp([(win[2][0], yr - 0.01)])[0], tp([(win[1][0], yr - 0.01)])[0]], 255)
    if p["family"] == "pickup":
        xc = win[0][0] - 0.025
        draw.thick_line(rgb, tp([(0.02, yw - 0.012)])[0], tp([(xc, yw - 0.012)])[0], dark, max(1.5, 0.015 * px))
    # Lights, bumper and mirror.
    L = p["length"]
    draw.poly(rgb, tp([(L - 0.045, yw - 0.025), (L - 0.004, yw - 0.04), (L - 0.002, yw - 0.07), (L - 0.04, yw - 0.065)]), (250, 240, 190))
    draw.poly(rgb, tp([(0.0, yw - 0.035), (0.03, yw - 0.03), (0.03, yw - 0.075), (0.0, yw - 0.08)]), (200, 20, 25))
    bump = (40, 40, 42) if rng.random() < 0.6 else paint * 0.8
    draw.rect(rgb, *tp([(0.0, p["clearance"] + 0.045)])[0], *tp([(L, p["clearance"] + 0.005)])[0], bump)
    draw.poly(rgb, tp([(win[3][0] - 0.01, yw + 0.005), (win[3][0] + 0.025, yw + 0.01), (win[3][0] + 0.02, yw + 0.04), (win[3][0] - 0.005, yw + 0.035)]), paint * 0.8)
    if details and details.get("spoiler"):
        _spoiler(rgb, alpha, p, tp)
    # Wheels: arch, tyre, rim, hub, spokes.
    spokes = int(rng.integers(4, 7))
    rot = rng.uniform(0, 2 * math.pi)
    wheel = details.get("wheel") if details else None
    for xw in (xr_w, xf_w):
        c = tp([(xw, wheel_r)])[0]
        draw.circle(rgb, c, wheel_r * px * 1.12, (22, 22, 24))
        draw.circle(rgb, c, wheel_r * px, (30, 30, 32))
        rim = rng.uniform(150, 210)
        rim_rgb, rim_r = (rim, rim, rim + 5), 0.6
        if wheel is not None:
            spokes, rim_rgb, rim_r = wheel
        draw.circle(rgb, c, wheel_r * px * rim_r, rim_rgb)
        spoke_rgb, spoke = ((90, 90, 95), 0.55) if wheel is None else (tuple(0.45 * v for v in rim_rgb), rim_r * 0.92)
        for k in range(spokes):
            a = rot + 2 * math.pi * k / spokes
            draw.line(rgb, c, (c[0] + math.cos(a) * wheel_r * px * spoke, c[1] + math.sin(a) * wheel_r * px * spoke), spoke_rgb, max(1, wheel_r * px * 0.1))
        draw.circle(rgb, c, wheel_r * px * 0.15, (60, 60, 64))
    return draw.to_uint8(rgb), alpha


def _spoiler(rgb: np.ndarray, alpha: np.ndarray, p: dict, tp) -> None:
    """A dark rear wing: on the boot lid of cars with a boot, else at the back of the roof."""
    yw = p["clearance"] + p["body_h"]
    yr = yw + p["roof_h"]
    if p["trunk"] >= 0.06:
        x0, x1, y = 0.0, 0.12, yw + 0.04
    else:
        xrr = max(p["trunk"], 0.025) + p["rear"] if p["family"] != "pickup" else p["length"] - p["hood"] - p["wind"] - p["cab"]
        x0, x1, y = xrr - 0.05, xrr + 0.07, yr + 0.012
    wing = tp([(x0 - 0.01, y + 0.012), (x1, y + 0.02), (x1, y), (x0 - 0.01, y - 0.01)])
    posts = [tp([(x + 0.006, y), (x + 0.006, y - 0.04), (x - 0.006, y - 0.04), (x - 0.006, y)]) for x in (x0 + 0.03, x1 - 0.03)]
    for poly in [wing] + posts:
        draw.poly(alpha, poly, 255)
        draw.poly(rgb, poly, (24, 24, 26))


# --------------------------------------------------------------------------- backgrounds


def background(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, float]:
    """A cluttered backdrop and the ground line (y where a car may stand)."""
    style = rng.choice(["street", "abstract", "studio"], p=[0.45, 0.35, 0.2])
    ground = rng.uniform(0.62, 0.9) * h
    if style == "street":
        sky = draw.hsv_colour(rng.uniform(195, 225), rng.uniform(0.2, 0.6), rng.uniform(0.7, 1.0))
        img = draw.vertical_gradient(h, w, sky, sky * 0.8 + 40)
        horizon = ground - rng.uniform(0.15, 0.35) * h
        x = -rng.uniform(0, 30)
        while x < w:  # buildings / trees along the horizon
            bw = rng.uniform(0.1, 0.35) * w
            top = horizon - rng.uniform(0.05, 0.5) * h
            if rng.random() < 0.3:
                draw.ellipse(img, (x + bw / 2, top + (horizon - top) / 2), (bw / 2, (horizon - top) / 2 + 4), draw.hsv_colour(rng.uniform(70, 150), 0.5, rng.uniform(0.3, 0.6)))
            else:
                c = rng.uniform(60, 220, 3)
                draw.rect(img, x, top, x + bw, horizon + 2, c)
                for wy in np.arange(top + 6, horizon - 6, rng.uniform(9, 16)):
                    for wx in np.arange(x + 4, x + bw - 6, rng.uniform(8, 14)):
                        draw.rect(img, wx, wy, wx + 4, wy + 5, c * 0.55)
            x += bw + rng.uniform(0, 15)
        road = rng.uniform(60, 120)
        img[int(horizon):] = draw.textured_patch(rng, h - int(horizon), w, (road, road, road + 4), low=8, fine=4, cell=6)
        ly = (ground + h) / 2
        for lx in np.arange(-rng.uniform(0, 40), w, 45):
            draw.rect(img, lx, ly, lx + 25, ly + 3, (220, 220, 210))
    elif style == "abstract":
        img = draw.vertical_gradient(h, w, rng.uniform(0, 255, 3), rng.uniform(0, 255, 3))
        img += draw.smooth_noise(rng, h, w, rng.uniform(15, 50), channels=3) * 25
        draw.random_clutter(img, rng, int(rng.integers(10, 25)), (0.05 * w, 0.4 * w), palette=list(PAINTS.values()))
    else:
        wall = rng.uniform(120, 235) * np.array([1.0, rng.uniform(0.9, 1.05), rng.uniform(0.85, 1.1)])
        img = draw.vertical_gradient(h, w, wall, wall * 0.75)
        floor = rng.uniform(70, 180, 3)
        img[int(ground - 0.1 * h):] = draw.textured_patch(rng, h - int(ground - 0.1 * h), w, floor, low=10, fine=3, cell=12)
    # Clutter everywhere: signs, poles, blobs, some in paint colours.
    draw.random_clutter(img, rng, int(rng.integers(3, 10)), (0.03 * w, 0.2 * w), palette=list(PAINTS.values()))
    for _ in range(int(rng.integers(0, 3))):
        px = rng.uniform(0, w)
        draw.rect(img, px, rng.uniform(0, 0.3) * h, px + rng.uniform(2, 6), ground, rng.uniform(60, 160, 3))
    return img, ground


def make_image(rng: np.random.Generator, spec: dict, size: tuple[int, int] | None = None,
               max_rotation: float = 5.0, details: dict | None = None, width=(176, 320)) -> np.ndarray:
    """One classification image of the car model ``spec`` (``size`` = (w, h), else drawn here:
    ``width`` px wide (min, max))."""
    if size is None:
        w = int(rng.integers(int(width[0]), int(width[1]) + 1))
        h = int(round(w * rng.uniform(0.56, 0.85)))
    else:
        w, h = size
    img, ground = background(rng, h, w)
    p = dict(spec["shape"])
    for key in ("length", "body_h", "roof_h", "wheel", "hood"):
        p[key] *= rng.uniform(0.97, 1.03)
    paint = np.clip(spec["paint"] * rng.uniform(0.88, 1.1) + rng.normal(0, 6, 3), 0, 255).astype(np.float32)
    car_w = rng.uniform(0.55, 0.9) * w
    px = car_w / (p["length"] + 0.06)
    rgb, alpha = draw_car(p, paint, px, rng, details)
    ch, cw = alpha.shape
    # Pose: flip, mild rotation, perspective (one end nearer), placement.
    if rng.random() < 0.5:
        rgb, alpha = rgb[:, ::-1].copy(), alpha[:, ::-1].copy()
    k = rng.uniform(-0.12, 0.12)
    src = np.float32([[0, 0], [cw, 0], [cw, ch], [0, ch]])
    dst = np.float32([[0, -k * ch / 2], [cw, k * ch / 2], [cw, ch - k * ch / 2], [0, ch + k * ch / 2]])
    dst[:, 0] = dst[:, 0] * (1 - abs(k) * 0.8) + (abs(k) * 0.4 * cw)
    ang = math.radians(rng.uniform(-max_rotation, max_rotation))
    cx = rng.uniform(cw / 2 + 2, max(cw / 2 + 3, w - cw / 2 - 2))
    bottom = min(h - 2, ground + rng.uniform(-0.05, 0.08) * h)
    top_left = np.float32([cx - cw / 2, bottom - ch])
    c, s = math.cos(ang), math.sin(ang)
    centre = np.float32([cw / 2, ch / 2])
    dst = (dst - centre) @ np.float32([[c, s], [-s, c]]) + centre + top_left
    M = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    # Ground shadow.
    shadow = np.zeros((h, w), np.uint8)
    draw.ellipse(shadow, (cx, bottom - 0.01 * ch), (cw * 0.5, max(2.0, 0.06 * ch)), 150)
    shadow = cv2.GaussianBlur(shadow, (0, 0), 2.0)
    img = img * (1 - shadow[:, :, None].astype(np.float32) / 400.0)
    img = draw.to_uint8(img)
    car = cv2.warpPerspective(rgb, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    a = cv2.warpPerspective(alpha, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    draw.blend(img, car, a, 0, 0)
    img = draw.light_jitter(img, rng)
    img = draw.add_grain(img, rng, rng.uniform(2, 7))
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 0.9))
    return img
