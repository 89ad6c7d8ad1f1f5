"""The ``hard`` demo profile: the real datasets' difficulties at the demo's sizes.

The default demo has few, easy classes (one body shape and paint each, ids 0..n-1). This profile
draws what the real release (and independent test releases) look like:

- classification: fine-grained car models whose ids are spread over 0..195 (0 and 195 included) in
  a 196-way label space. Models come in groups of two or three that share a body shape and colour
  family and differ in one detail only: wheel style, a rear spoiler, or the shade of the paint.
  Images carry flips, +-8 deg rotation, scale and colour jitter, occluders (posts, people-sized
  blobs, other cars' fronts), the demo's three kinds of background, widths of 220-420 px and a
  few grayscale images;
- detection: TT100K-like sign sizes (most under 32 px, about a fifth 8-12 px), stacks on poles,
  unannotated direction boards and traffic lights as distractors, some images without any sign;
- segmentation: rare classes rarer, thin classes thinner, and the ego hood (255) more often.
- retrieval: close paint shades, captions worded by other code, more texts with fewer images
  (a third of validation/test texts unseen in training), and harsher crops (:func:`retrieval_look`;
  the plan is in :mod:`.retrieval`).
"""

from __future__ import annotations

import cv2
import numpy as np

from . import classification, draw

NUM_IDS = 196  # Stanford Cars' label space: a hard release's ids are spread over all of it

# Wheel styles: (spokes, rim grey or colour, rim radius as a fraction of the tyre)
WHEELS = (
    (5, (205, 205, 210), 0.62),  # five-spoke alloy
    (10, (60, 60, 66), 0.66),  # black multi-spoke
    (6, (185, 150, 80), 0.60),  # bronze
    (3, (225, 225, 230), 0.72),  # large polished rim, three spokes
)
DETAILS = ("wheel", "spoiler", "shade")


def class_ids(n_classes: int) -> list[int]:
    """Ids spread evenly over 0..195, both ends included."""
    if not 2 <= n_classes <= NUM_IDS:
        raise ValueError(f"the hard profile needs 2..{NUM_IDS} classes, got {n_classes}")
    return [int(round(v)) for v in np.linspace(0, NUM_IDS - 1, n_classes)]


def class_specs(seed: int, n_classes: int) -> list[dict]:
    """One spec per class (in id order): groups of 2-3 models differing in one detail each."""
    rng = draw.rng_for(seed, "hard-cls-plan")
    colours = list(classification.PAINTS)
    n_shapes = 3 * len(classification.FAMILIES)
    # (body, colour family) pairs without repeats, so that two groups never draw the same models
    pairs = rng.permutation(n_shapes * len(colours))
    specs: list[dict] = []
    group = 0
    while len(specs) < n_classes:
        size = min(int(rng.choice([2, 3], p=[0.5, 0.5])), n_classes - len(specs))
        shape, colour = divmod(int(pairs[group]), len(colours))
        colour = colours[colour]
        detail = DETAILS[int(rng.integers(len(DETAILS)))]
        base = dict(wheel=int(rng.integers(len(WHEELS))), spoiler=False, shade=1.0)
        wheels = rng.permutation(len(WHEELS))
        for k in range(size):
            spec = dict(base)
            if detail == "wheel":
                spec["wheel"] = int(wheels[k])
            elif detail == "spoiler":
                spec["spoiler"] = k == 1
                spec["wheel"] = base["wheel"] if k < 2 else int(wheels[0] if wheels[0] != base["wheel"] else wheels[1])
            else:  # paint shade: light, normal, dark
                spec["shade"] = (1.0, 0.62, 1.3)[k]
            paint = np.clip(np.array(classification.PAINTS[colour], np.float32) * spec["shade"], 0, 255)
            name = f"{colour} {classification.FAMILIES[shape % len(classification.FAMILIES)]} {shape // 7 + 1}" \
                   f" {('w%d' % spec['wheel'])}{' spoiler' if spec['spoiler'] else ''}" \
                   f"{'' if spec['shade'] == 1.0 else (' dark' if spec['shade'] < 1 else ' light')}"
            specs.append(dict(name=name, group=group, shape=classification.shape_params(seed, shape),
                              paint=paint, wheel=WHEELS[spec["wheel"]], spoiler=spec["spoiler"]))
        group += 1
    return specs


def _occlude(img: np.ndarray, rng: np.random.Generator) -> None:
    """A post, a passer-by-sized blob or another car's corner in front of part of the car."""
    h, w = img.shape[:2]
    kind = rng.integers(3)
    c = rng.uniform(30, 220, 3)
    if kind == 0:
        x = rng.uniform(0.1, 0.9) * w
        draw.rect(img, x, rng.uniform(0, 0.3) * h, x + rng.uniform(0.03, 0.08) * w, h, c)
    elif kind == 1:
        draw.ellipse(img, (rng.uniform(0, w), rng.uniform(0.4, 1.0) * h), (rng.uniform(0.06, 0.14) * w, rng.uniform(0.15, 0.35) * h), c)
    else:
        side = rng.integers(2)
        x0 = 0 if side == 0 else w * rng.uniform(0.78, 0.9)
        x1 = w * rng.uniform(0.1, 0.22) if side == 0 else w
        draw.rect(img, x0, h * rng.uniform(0.55, 0.75), x1, h, c)


def make_cls_image(rng: np.random.Generator, spec: dict) -> np.ndarray:
    """One image of the car model ``spec`` with the hard profile's nuisances."""
    w = int(rng.integers(220, 421))
    h = int(round(w * rng.uniform(0.56, 0.8)))
    details = {"wheel": spec["wheel"], "spoiler": spec["spoiler"]}
    img = classification.make_image(rng, spec, size=(w, h), max_rotation=8.0, details=details)
    if rng.random() < 0.35:
        _occlude(img, rng)
    if rng.random() < 0.06:
        grey = img.astype(np.float32) @ np.float32([0.299, 0.587, 0.114])
        img = np.repeat(draw.to_uint8(grey)[:, :, None], 3, axis=2)
    return img


def sign_size(rng: np.random.Generator, low: float, high: float) -> float:
    """TT100K-like: a fifth tiny (8-12 px), the rest log-uniform up to 40 px, one in ten up to ``high``."""
    u = rng.random()
    if u < 0.2:
        return float(rng.uniform(low, 12.0))
    if u < 0.9:
        return draw.loguniform(rng, 12.0, 40.0)
    return draw.loguniform(rng, 32.0, high)


def direction_board(img: np.ndarray, rng: np.random.Generator, x: float, y: float, scale: float) -> None:
    """An unannotated blue or green direction board with white 'text' and arrows, on a post."""
    bw, bh = scale * rng.uniform(2.0, 4.0), scale * rng.uniform(0.9, 1.6)
    c = (30, 80, 170) if rng.random() < 0.5 else (20, 120, 70)
    draw.rect(img, x - max(1.0, 0.05 * scale), y, x + max(1.0, 0.05 * scale), y + 3 * bh, (120, 120, 125))
    draw.rect(img, x - bw / 2, y - bh, x + bw / 2, y, c)
    for k in range(int(rng.integers(2, 4))):
        ty = y - bh + (k + 0.6) * bh / 3.5
        draw.rect(img, x - bw * 0.4, ty, x + bw * rng.uniform(0.0, 0.35), ty + max(1.0, bh * 0.1), (245, 245, 245), aa=False)
    ax = x + bw * 0.38
    draw.poly(img, [(ax, y - bh * 0.5), (ax - bh * 0.25, y - bh * 0.75), (ax - bh * 0.25, y - bh * 0.25)], (245, 245, 245))


def traffic_light(img: np.ndarray, rng: np.random.Generator, x: float, y: float, scale: float) -> None:
    """An unannotated traffic light (three discs, one lit) on a short post."""
    bw, bh = scale * 0.45, scale * 1.3
    draw.rect(img, x - bw / 2, y, x + bw / 2, y + bh, (25, 25, 25))
    lit = int(rng.integers(3))
    for k, lc in enumerate([(230, 40, 30), (240, 190, 30), (40, 210, 90)]):
        draw.circle(img, (x, y + bh * (k + 0.5) / 3), bw * 0.33, lc if k == lit else np.array(lc) * 0.3)


def distractors(img: np.ndarray, rng: np.random.Generator, horizon: float) -> None:
    """Direction boards and traffic lights at sign-like sizes, before the signs are placed."""
    h, w = img.shape[:2]
    for _ in range(int(rng.integers(1, 4))):
        scale = draw.loguniform(rng, 8.0, 40.0)
        x, y = rng.uniform(0.05, 0.95) * w, rng.uniform(0.1, 0.8) * max(horizon, 0.3 * h)
        (direction_board if rng.random() < 0.6 else traffic_light)(img, rng, x, y, scale)


# Segmentation: chance of a class in an image when not forced (rarer than the demo's), thin-part factor
SEG_CLASS_PROB_SCALE = {"train": 0.4, "bus": 0.5, "motorcycle": 0.5, "bicycle": 0.6, "rider": 0.6,
                        "traffic light": 0.6, "wall": 0.7, "truck": 0.7}
SEG_HOOD_PROB = 0.5


# Retrieval: what independently drawn crops plausibly do differently from the demo's: the vehicle
# seen a little from the side, cut off by the crop, partly hidden, small and upscaled, in harsher
# light; and every test crop (pedestrians too) through a road camera.
RET_HARD = dict(yaw=0.6, truncate=0.35, occlude=0.3, lowres=0.35, grey=0.03)


def _yaw(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A few degrees of turn: one side of the picture shrinks vertically (a perspective warp)."""
    h, w = img.shape[:2]
    k = rng.uniform(0.05, 0.16) * h
    near = rng.random() < 0.5
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = np.float32([[0, k], [w, 0], [w, h], [0, h - k]]) if near else np.float32([[0, 0], [w, k], [w, h - k], [0, h]])
    return cv2.warpPerspective(img, cv2.getPerspectiveTransform(src, dst), (w, h), borderMode=cv2.BORDER_REPLICATE)


def _truncate(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A detector's loose or tight box: 8-25 % cut off one or two sides."""
    h, w = img.shape[:2]
    x0, x1, y0, y1 = 0, w, 0, h
    for side in rng.permutation(4)[: int(rng.integers(1, 3))]:
        cut = rng.uniform(0.08, 0.25)
        if side == 0:
            x0 = int(cut * w)
        elif side == 1:
            x1 = w - int(cut * w)
        elif side == 2:
            y0 = int(cut * h)
        else:
            y1 = h - int(cut * h)
    return np.ascontiguousarray(img[y0:y1, x0:x1])


def _low_res(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A distant object: drawn at 30-70 % of the size and scaled back up."""
    h, w = img.shape[:2]
    f = rng.uniform(0.3, 0.7)
    small = cv2.resize(img, (max(8, int(w * f)), max(8, int(h * f))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def retrieval_look(img: np.ndarray, rng: np.random.Generator, kind: str, split: str) -> np.ndarray:
    """The hard profile's nuisances on a finished retrieval crop (``kind``: vehicle | pedestrian)."""
    p = RET_HARD
    if kind == "vehicle" and rng.random() < p["yaw"]:
        img = _yaw(img, rng)
    if rng.random() < p["occlude"]:
        img = img.copy()
        _occlude(img, rng)
    if rng.random() < p["truncate"]:
        img = _truncate(img, rng)
    if rng.random() < p["lowres"]:
        img = _low_res(img, rng)
    if split == "test":  # the road camera, for both kinds
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.6, 1.4))
        img = draw.light_jitter(img, rng, gain=(0.55, 1.0), gamma=(0.9, 1.5), cast=0.15)
        img = draw.add_grain(img, rng, rng.uniform(4, 9))
    else:
        img = draw.light_jitter(img, rng, gain=(0.6, 1.3), gamma=(0.75, 1.4), cast=0.12)
    if rng.random() < p["grey"]:  # infra-red / monochrome cameras
        img = np.repeat(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)
    return img
