"""Vehicle crops for the retrieval demo: front views whose colour, type and brand are visible.

Type sets the proportions (a low sedan, a tall SUV, a minivan's big windscreen, a boxy microbus,
a bus with a destination sign, a truck with its cargo box above the cab); brand sets the grille
(single frame, twin kidneys, waterfall bars, ...) and the emblem drawn on it; colour is the
paint. Train and validation crops look like web photos (studio or street backdrops, large and
sharp); test crops look like surveillance frames (asphalt seen from above, a keystone warp, a
timestamp, blur and a colour cast): the mild domain gap the organisers describe.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from . import draw
from ..classes import VEHICLE_TYPES

VEHICLE_COLOURS = {
    "white": (235, 235, 232),
    "black": (28, 28, 30),
    "grey": (125, 127, 130),
    "red": (190, 30, 35),
    "blue": (35, 70, 170),
    "yellow": (235, 190, 30),
    "green": (40, 130, 60),
    "brown": (115, 75, 45),
    "orange": (235, 115, 25),
}
BRANDS = ("Audi", "BMW", "Benz", "Toyota", "Volkswagen", "Honda", "Chery", "Buick")
# The hard profile's extra paints: close shades of the colours above (silver between white and
# grey, maroon between red and brown, gold near yellow and orange, navy near blue and black, beige
# near white), as independently drawn releases name more colours than ours.
HARD_COLOURS = {
    "silver": (185, 188, 194),
    "maroon": (120, 28, 38),
    "gold": (200, 160, 65),
    "navy": (28, 40, 95),
    "beige": (214, 196, 158),
}
PAINTS = {**VEHICLE_COLOURS, **HARD_COLOURS}

# Per type, in units of the vehicle's width: total height, body top (bonnet line), windscreen
# top, windscreen top half-width, clearance, and whether there is a cargo box.
_TYPE = {
    "Sedan": dict(height=0.6, body=0.34, wind=0.56, wtop=0.3, clear=0.07),
    "SUV": dict(height=0.8, body=0.46, wind=0.75, wtop=0.36, clear=0.1),
    "Minivan": dict(height=0.9, body=0.4, wind=0.86, wtop=0.4, clear=0.08),
    "Microbus": dict(height=1.02, body=0.36, wind=0.82, wtop=0.45, clear=0.08),
    "Bus": dict(height=1.22, body=0.42, wind=1.04, wtop=0.47, clear=0.06),
    "Truck": dict(height=1.18, body=0.48, wind=0.8, wtop=0.42, clear=0.1, box=True),
}
assert set(_TYPE) == set(VEHICLE_TYPES)


def article(word: str) -> str:
    return "An" if word[0].lower() in "aeiou" else "A"


def attribute_text(colour: str, vtype: str | None, brand: str) -> str:
    """The organisers' attribute form: ``A white Audi Sedan.`` (``A white Audi.`` without a type)."""
    name = f"{brand} {vtype}" if vtype else brand
    return f"{article(colour)} {colour} {name}."


def caption(colour: str, vtype: str | None, brand: str, rng: np.random.Generator) -> str:
    name = f"{brand} {vtype}" if vtype else brand
    a = article(colour).lower()
    templates = [
        f"This is {a} {colour} {name}.",
        f"This is {a} {colour} {name}.",
        f"{article(colour)} {colour} {name} is in the picture.",
        f"The vehicle is {a} {colour} {name}.",
        f"There's {a} {colour} {name} on the road.",
    ]
    if vtype:
        templates.append(f"{article(colour)} {colour} {vtype} made by {brand}.")
    return templates[int(rng.integers(len(templates)))]


# Hard-profile wording: other spellings of the same colour and brand, generic nouns for the type
HARD_SPELLINGS = {"grey": ("grey", "gray"), "Benz": ("Benz", "Mercedes-Benz", "Mercedes"),
                  "Volkswagen": ("Volkswagen", "VW"), "Minivan": ("Minivan", "MPV", "van"), "Microbus": ("Microbus", "minibus")}
VEHICLE_NOUNS = ("car", "vehicle", "auto", "automobile")


def caption_hard(colour: str, vtype: str | None, brand: str, rng: np.random.Generator) -> str:
    """A caption as other people's code might write it: synonyms (gray, VW, vehicle, auto), other
    word orders, the type in lower case or left out for a generic noun, often no capital or full stop."""
    def spell(word):
        options = HARD_SPELLINGS.get(word, (word,))
        return options[int(rng.integers(len(options)))]

    c, b = spell(colour), spell(brand)
    noun = VEHICLE_NOUNS[int(rng.integers(len(VEHICLE_NOUNS)))]
    t = (spell(vtype).lower() if rng.random() < 0.5 else spell(vtype)) if vtype else noun
    a = article(c).lower()
    templates = [
        f"{a} {c} {b} {t}",
        f"{b} {t}, {c}",
        f"{c} {b} {t} driving along the street",
        f"{a} {t} from {b} in {c}",
        f"{b} {t} painted {c}",
        f"photo of {a} {c} {b} {t}",
        f"the {noun} is {a} {c} {b}" + (f" {t}" if vtype else ""),
        f"{c} colored {t}, brand {b}",
        f"there is {a} {c} {t} made by {b} in the image",
    ]
    text = templates[int(rng.integers(len(templates)))]
    if rng.random() < 0.4:
        text = text[0].upper() + text[1:]
    return text + ("." if rng.random() < 0.4 else "")


# --------------------------------------------------------------------------- emblems and grilles


def _emblem(img, brand: str, cx: float, cy: float, r: float) -> None:
    chrome = (215, 215, 220)
    t = max(1, int(round(r * 0.22)))
    if brand == "Audi":
        for k in range(4):
            draw.circle(img, (cx + (k - 1.5) * r * 0.75, cy), r * 0.48, chrome, thickness=t)
    elif brand == "BMW":
        draw.circle(img, (cx, cy), r, (25, 25, 25))
        draw.ellipse(img, (cx, cy), (r * 0.7, r * 0.7), (40, 110, 210), start=180, end=270)
        draw.ellipse(img, (cx, cy), (r * 0.7, r * 0.7), (40, 110, 210), start=0, end=90)
        draw.ellipse(img, (cx, cy), (r * 0.7, r * 0.7), (245, 245, 245), start=90, end=180)
        draw.ellipse(img, (cx, cy), (r * 0.7, r * 0.7), (245, 245, 245), start=270, end=360)
    elif brand == "Benz":
        draw.circle(img, (cx, cy), r, chrome, thickness=t)
        for k in range(3):
            a = -math.pi / 2 + k * 2 * math.pi / 3
            draw.thick_line(img, (cx, cy), (cx + math.cos(a) * r, cy + math.sin(a) * r), chrome, max(1.0, r * 0.25))
    elif brand == "Toyota":
        draw.ellipse(img, (cx, cy), (r * 1.2, r * 0.8), chrome, thickness=t)
        draw.ellipse(img, (cx, cy), (r * 0.35, r * 0.8), chrome, thickness=t)
        draw.ellipse(img, (cx, cy - r * 0.35), (r * 0.8, r * 0.3), chrome, thickness=t)
    elif brand == "Volkswagen":
        draw.circle(img, (cx, cy), r, (30, 60, 140))
        draw.circle(img, (cx, cy), r, chrome, thickness=t)
        pts = [(cx - r * 0.6, cy - r * 0.5), (cx - r * 0.3, cy + r * 0.6), (cx, cy - r * 0.1), (cx + r * 0.3, cy + r * 0.6), (cx + r * 0.6, cy - r * 0.5)]
        draw.polyline(img, pts, chrome, thickness=t)
    elif brand == "Honda":
        draw.rect(img, cx - r, cy - r * 0.85, cx + r, cy + r * 0.85, chrome)
        draw.rect(img, cx - r * 0.7, cy - r * 0.6, cx + r * 0.7, cy + r * 0.6, (40, 40, 45))
        draw.rect(img, cx - r * 0.55, cy - r * 0.5, cx - r * 0.3, cy + r * 0.5, chrome)
        draw.rect(img, cx + r * 0.3, cy - r * 0.5, cx + r * 0.55, cy + r * 0.5, chrome)
        draw.rect(img, cx - r * 0.3, cy - r * 0.1, cx + r * 0.3, cy + r * 0.1, chrome)
    elif brand == "Chery":
        draw.ellipse(img, (cx, cy), (r * 1.2, r * 0.85), chrome, thickness=t)
        draw.poly(img, [(cx - r * 0.6, cy - r * 0.5), (cx + r * 0.6, cy - r * 0.5), (cx, cy + r * 0.6)], chrome)
    elif brand == "Buick":
        draw.circle(img, (cx, cy), r, chrome, thickness=t)
        for k, c in enumerate([(200, 30, 40), (235, 235, 235), (40, 70, 180)]):
            x = cx + (k - 1) * r * 0.5
            y = cy + (k - 1) * r * 0.3
            draw.poly(img, [(x - r * 0.17, y - r * 0.35), (x + r * 0.17, y - r * 0.35), (x + r * 0.17, y + r * 0.2), (x, y + r * 0.35), (x - r * 0.17, y + r * 0.2)], c)
    else:
        raise KeyError(brand)


def _grille(img, brand: str, cx: float, top: float, bottom: float, half: float, paint) -> tuple[float, float]:
    """Draw the brand's grille between rows ``top`` and ``bottom``; return the emblem centre."""
    dark = (22, 22, 24)
    chrome = (200, 200, 205)
    gh = bottom - top
    if brand == "Audi":  # large single-frame trapezoid with mesh
        pts = [(cx - half * 0.55, top), (cx + half * 0.55, top), (cx + half * 0.65, bottom + gh * 0.4), (cx - half * 0.65, bottom + gh * 0.4)]
        draw.poly(img, pts, dark)
        for y in np.arange(top + 2, bottom + gh * 0.4, max(2.0, gh * 0.18)):
            draw.line(img, (cx - half * 0.6, y), (cx + half * 0.6, y), (60, 60, 65), 1)
        draw.polyline(img, pts, chrome, thickness=max(1, int(gh * 0.06)), closed=True)
        return cx, top + gh * 0.25
    if brand == "BMW":  # twin kidneys with vertical bars
        for s in (-1, 1):
            x0, x1 = cx + s * half * 0.06, cx + s * half * 0.36
            draw.rect(img, min(x0, x1), top, max(x0, x1), bottom, chrome)
            draw.rect(img, min(x0, x1) + 1.5, top + 1.5, max(x0, x1) - 1.5, bottom - 1.5, dark)
            for x in np.linspace(min(x0, x1) + 3, max(x0, x1) - 3, 4):
                draw.line(img, (x, top + 2), (x, bottom - 2), (90, 90, 95), 1)
        return cx, top - gh * 0.35
    if brand == "Benz":  # wide grille, one thick chrome bar, big star
        draw.rect(img, cx - half * 0.5, top, cx + half * 0.5, bottom, dark)
        draw.rect(img, cx - half * 0.5, (top + bottom) / 2 - gh * 0.08, cx + half * 0.5, (top + bottom) / 2 + gh * 0.08, chrome)
        return cx, (top + bottom) / 2
    if brand == "Toyota":  # low wide trapezoid with slats
        pts = [(cx - half * 0.45, top + gh * 0.3), (cx + half * 0.45, top + gh * 0.3), (cx + half * 0.6, bottom + gh * 0.3), (cx - half * 0.6, bottom + gh * 0.3)]
        draw.poly(img, pts, dark)
        for y in np.arange(top + gh * 0.4, bottom + gh * 0.3, max(2.0, gh * 0.2)):
            draw.line(img, (cx - half * 0.55, y), (cx + half * 0.55, y), (110, 110, 115), 1)
        return cx, top + gh * 0.05
    if brand == "Volkswagen":  # slim band with chrome strips
        draw.rect(img, cx - half * 0.6, top + gh * 0.2, cx + half * 0.6, top + gh * 0.6, dark)
        for f in (0.3, 0.45):
            draw.line(img, (cx - half * 0.6, top + gh * f), (cx + half * 0.6, top + gh * f), chrome, max(1, int(gh * 0.06)))
        return cx, top + gh * 0.4
    if brand == "Honda":  # chrome wing over a dark grille
        draw.rect(img, cx - half * 0.45, top + gh * 0.2, cx + half * 0.45, bottom, dark)
        draw.rect(img, cx - half * 0.6, top, cx + half * 0.6, top + gh * 0.2, chrome)
        return cx, top + gh * 0.5
    if brand == "Chery":  # hexagon with mesh
        pts = [(cx - half * 0.35, top), (cx + half * 0.35, top), (cx + half * 0.5, (top + bottom) / 2), (cx + half * 0.35, bottom), (cx - half * 0.35, bottom), (cx - half * 0.5, (top + bottom) / 2)]
        draw.poly(img, pts, dark)
        for x in np.arange(cx - half * 0.45, cx + half * 0.45, max(2.0, gh * 0.2)):
            draw.line(img, (x, top + 1), (x, bottom - 1), (70, 70, 75), 1)
        return cx, (top + bottom) / 2
    if brand == "Buick":  # waterfall: vertical chrome bars
        draw.rect(img, cx - half * 0.45, top, cx + half * 0.45, bottom, dark)
        for x in np.arange(cx - half * 0.42, cx + half * 0.42, max(2.0, half * 0.08)):
            draw.line(img, (x, top + 1), (x, bottom - 1), chrome, 1)
        return cx, (top + bottom) / 2
    raise KeyError(brand)


# --------------------------------------------------------------------------- vehicle


def draw_vehicle(colour: str, vtype: str, brand: str, width: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Front view, ``width`` px wide: (rgb uint8, alpha uint8)."""
    g = _TYPE[vtype]
    paint = np.array(PAINTS[colour], np.float32) * rng.uniform(0.9, 1.08)
    m = 0.04
    W = int(math.ceil(width * (1 + 2 * m)))
    H = int(math.ceil(width * (g["height"] + 2 * m)))
    cx = W / 2

    def Y(y):  # vehicle units (ground = 0, up) -> canvas rows
        return (g["height"] + m - y) * width

    def X(x):  # vehicle units (centre = 0) -> canvas columns
        return cx + x * width

    rgb = np.zeros((H, W, 3), np.float32)
    alpha = np.zeros((H, W), np.uint8)
    body_top, wind_top, clear = g["body"], g["wind"], g["clear"]
    # Silhouette: body, greenhouse, wheels, mirrors (and the cargo box behind a truck's cab).
    shapes = []
    if g.get("box"):
        shapes.append([(X(-0.52), Y(0.55)), (X(0.52), Y(0.55)), (X(0.52), Y(g["height"])), (X(-0.52), Y(g["height"]))])
    body = [(X(-0.5), Y(clear)), (X(0.5), Y(clear)), (X(0.5), Y(body_top - 0.04)), (X(0.47), Y(body_top)), (X(-0.47), Y(body_top)), (X(-0.5), Y(body_top - 0.04))]
    top_h = g["height"] if not g.get("box") else wind_top + 0.06
    cabin = [(X(-0.46), Y(body_top)), (X(0.46), Y(body_top)), (X(g["wtop"] + 0.02), Y(top_h)), (X(-g["wtop"] - 0.02), Y(top_h))]
    shapes += [body, cabin]
    for pts in shapes:
        draw.poly(alpha, pts, 255)
    for s in (-1, 1):
        draw.rect(alpha, X(s * 0.44), Y(0.0), X(s * 0.3), Y(clear + 0.02), 255)
        draw.rect(alpha, X(s * 0.47), Y(body_top + 0.02), X(s * 0.56), Y(body_top + 0.09), 255)

    t = np.linspace(1.15, 0.8, H, dtype=np.float32)[:, None, None]
    rgb[:] = paint[None, None, :] * t
    if g.get("box"):
        bc = [np.array([225, 225, 220]), np.array([150, 150, 155]), paint * 0.8][int(rng.integers(3))]
        draw.poly(rgb, shapes[0], bc)
        draw.line(rgb, (X(-0.52), Y(g["height"] - 0.02)), (X(0.52), Y(g["height"] - 0.02)), bc * 0.7, max(1, int(width * 0.01)))
        draw.poly(rgb, shapes[1], paint * 1.05)
        draw.poly(rgb, shapes[2], paint * 1.1)
    # Windscreen with reflection and wipers.
    wb = body_top + 0.02
    wt = wind_top
    wind = [(X(-0.42), Y(wb)), (X(0.42), Y(wb)), (X(g["wtop"]), Y(wt)), (X(-g["wtop"]), Y(wt))]
    glass = np.array([45, 55, 72], np.float32) * rng.uniform(0.8, 1.3)
    draw.poly(rgb, wind, glass)
    k = rng.uniform(-0.3, 0.1)
    draw.poly(rgb, [(X(k), Y(wb)), (X(k + 0.12), Y(wb)), (X(k + 0.25), Y(wt)), (X(k + 0.15), Y(wt))], glass + 30)
    for s in (-1, 1):
        draw.line(rgb, (X(s * 0.05), Y(wb + 0.01)), (X(s * 0.3), Y(wb + 0.05)), (20, 20, 20), max(1, int(width * 0.008)))
    if vtype == "Bus":  # destination sign above the windscreen
        draw.rect(rgb, X(-0.4), Y(g["height"] - 0.02), X(0.4), Y(wt + 0.02), (20, 20, 20))
        for x in np.arange(-0.35, 0.3, 0.06):
            draw.rect(rgb, X(x), Y(g["height"] - 0.06), X(x + 0.035), Y(wt + 0.06), (250, 150, 30))
    if vtype == "SUV":
        draw.line(rgb, (X(-g["wtop"] - 0.02), Y(g["height"] - 0.005)), (X(g["wtop"] + 0.02), Y(g["height"] - 0.005)), (30, 30, 30), max(1, int(width * 0.015)))
    # Headlights, grille and emblem, bumper, plate, wheels, mirrors.
    gl_top, gl_bottom = Y(body_top - 0.06), Y(body_top - 0.16 - 0.05 * (vtype in ("Bus", "Truck")))
    for s in (-1, 1):
        hx0, hx1 = X(s * 0.28), X(s * 0.45)
        shape = BRANDS.index(brand) % 3
        if shape == 0:
            draw.rect(rgb, min(hx0, hx1), Y(body_top - 0.06), max(hx0, hx1), Y(body_top - 0.12), (245, 240, 215))
        elif shape == 1:
            draw.ellipse(rgb, ((hx0 + hx1) / 2, Y(body_top - 0.09)), (abs(hx1 - hx0) / 2, width * 0.03), (245, 240, 215))
        else:
            draw.poly(rgb, [(hx0, Y(body_top - 0.1)), (hx1, Y(body_top - 0.05)), (hx1, Y(body_top - 0.12)), (hx0, Y(body_top - 0.13))], (245, 240, 215))
    ex, ey = _grille(rgb, brand, cx, gl_top, gl_bottom, 0.28 * width, paint)
    _emblem(rgb, brand, ex, ey, max(2.0, 0.045 * width))
    bump = np.array([45, 45, 48]) if rng.random() < 0.5 else paint * 0.85
    draw.rect(rgb, X(-0.5), Y(clear + 0.08), X(0.5), Y(clear), bump)
    draw.rect(rgb, X(-0.1), Y(clear + 0.12), X(0.1), Y(clear + 0.05), (30, 70, 200))
    draw.rect(rgb, X(-0.085), Y(clear + 0.11), X(0.085), Y(clear + 0.06), (30, 70, 200))
    for x in np.linspace(-0.07, 0.05, 5):
        draw.rect(rgb, X(x), Y(clear + 0.105), X(x + 0.015), Y(clear + 0.065), (240, 240, 240), aa=False)
    for s in (-1, 1):
        draw.rect(rgb, X(s * 0.44), Y(0.0), X(s * 0.3), Y(clear + 0.02), (22, 22, 24))
        draw.rect(rgb, X(s * 0.47), Y(body_top + 0.02), X(s * 0.56), Y(body_top + 0.09), paint * 0.9)
    rgb += rng.standard_normal((H, W, 1), dtype=np.float32) * 3
    return draw.to_uint8(rgb), alpha


def _web_background(rng, h, w):
    style = rng.random()
    if style < 0.4:  # studio
        c = rng.uniform(150, 250, 3)
        img = draw.vertical_gradient(h, w, c, c * rng.uniform(0.6, 0.9))
    elif style < 0.8:  # blurred street
        c = draw.hsv_colour(rng.uniform(190, 230), 0.4, 0.9)
        img = draw.vertical_gradient(h, w, c, c * 0.7)
        draw.random_clutter(img, rng, int(rng.integers(4, 10)), (0.1 * w, 0.5 * w))
        g = rng.uniform(70, 130)
        img[int(0.65 * h):] = (g, g, g)
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(1.5, 3.5))
    else:  # showroom
        c = rng.uniform(60, 200, 3)
        img = draw.vertical_gradient(h, w, c * 0.8, c)
        img[int(0.7 * h):] = rng.uniform(150, 230)
        draw.random_clutter(img, rng, int(rng.integers(1, 4)), (0.05 * w, 0.2 * w), region=(0, 0, w, 0.5 * h))
    return img


def _cctv_background(rng, h, w):
    g = rng.uniform(75, 120)
    img = draw.textured_patch(rng, h, w, (g, g, g + 2), low=6, fine=5, cell=10)
    for x in (rng.uniform(0, 0.15) * w, rng.uniform(0.85, 1.0) * w):
        draw.rect(img, x - 1.5, 0, x + 1.5, h, (215, 215, 205))
    if rng.random() < 0.5:
        y = rng.uniform(0.05, 0.25) * h
        draw.rect(img, 0, y, w, y + rng.uniform(3, 8), (220, 220, 210))
    return img


def make_image(rng: np.random.Generator, colour: str, vtype: str, brand: str, domain: str = "web") -> np.ndarray:
    """One vehicle crop; ``domain`` is ``web`` (train/val) or ``cctv`` (test)."""
    vw = rng.uniform(100, 190)
    rgb, alpha = draw_vehicle(colour, vtype, brand, vw, rng)
    ch, cw = alpha.shape
    mx, my = rng.uniform(0.03, 0.15), rng.uniform(0.03, 0.15)
    w, h = int(cw * (1 + 2 * mx)), int(ch * (1 + 2 * my))
    bg = (_web_background if domain == "web" else _cctv_background)(rng, h, w)
    img = draw.to_uint8(bg + 0.5)
    ox = int(rng.integers(0, max(1, w - cw)))
    oy = int(rng.integers(0, max(1, h - ch)))
    if domain == "web" and rng.random() < 0.5:
        shadow = np.zeros((h, w), np.uint8)
        draw.ellipse(shadow, (ox + cw / 2, oy + ch), (cw * 0.55, max(2.0, ch * 0.05)), 110)
        img = draw.to_uint8(img * (1 - shadow[:, :, None] / 255.0))
    draw.blend(img, rgb, alpha, ox, oy)
    if domain == "cctv":  # seen from a pole: keystone, blur, timestamp, colour cast
        k = rng.uniform(0.04, 0.12)
        src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        dst = np.float32([[k * w, 0], [w - k * w, 0], [w, h], [0, h]])
        img = cv2.warpPerspective(img, cv2.getPerspectiveTransform(src, dst), (w, h), borderMode=cv2.BORDER_REPLICATE)
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.1))
        stamp = f"2023-0{int(rng.integers(1, 10))}-{int(rng.integers(10, 29))} {int(rng.integers(10, 24))}:{int(rng.integers(10, 60))}"
        cv2.putText(img, stamp, (2, 9), cv2.FONT_HERSHEY_PLAIN, 0.6, (240, 240, 240), 1, cv2.LINE_AA)
        img = draw.light_jitter(img, rng, gain=(0.7, 1.0), gamma=(0.9, 1.3), cast=0.1)
        return draw.add_grain(img, rng, rng.uniform(4, 8))
    img = draw.light_jitter(img, rng)
    return draw.add_grain(img, rng, rng.uniform(1.5, 4))
