"""Pedestrian crops for the retrieval demo: 21 binary attributes drawn into the pixels, and captions.

The attribute vector is written as 21 comma-separated 0/1 values in the order of
:data:`PEDESTRIAN_ATTRIBUTES`; index 0 is the gender (1 = male, 0 = female), as in the organisers'
files, where the matching rule compares gender first and then attribute inclusion.
"""

from __future__ import annotations

import numpy as np

from . import draw
from ..classes import PEDESTRIAN_ATTRIBUTE_COUNT

PEDESTRIAN_ATTRIBUTES = (
    "male",  # 0: gender, 1 = male (short hair), 0 = female (long hair)
    "age_over_60",  # grey or white hair, a slight stoop
    "age_under_18",  # a child: smaller figure, larger head
    "hat",  # a cap or hat with a brim
    "glasses",  # dark frames across the eyes
    "short_sleeve",  # 1 = short sleeves (bare forearms), 0 = long sleeves
    "upper_stripes",  # horizontal stripes on the top
    "upper_red",  # upper-body colour: at most one of red / white / black / blue;
    "upper_white",  #   none of them = another colour (green, grey, yellow, brown, pink, ...)
    "upper_black",
    "upper_blue",
    "trousers",  # lower body: exactly one of trousers / shorts / skirt
    "shorts",
    "skirt",
    "lower_black",  # lower-body colour: at most one of black / blue; none = grey, khaki, brown, ...
    "lower_blue",
    "backpack",  # straps over both shoulders, the pack showing at the sides
    "handbag",  # a small bag hanging from a hand
    "shoulder_bag",  # a strap across the chest and a bag at the hip
    "holding_object",  # a forearm raised holding a phone, cup or book
    "face_mask",  # a light mask over mouth and nose
)
"""The 21 pedestrian attributes, in vector order (index 0 = gender: 1 male, 0 female)."""

assert len(PEDESTRIAN_ATTRIBUTES) == PEDESTRIAN_ATTRIBUTE_COUNT
A = {name: i for i, name in enumerate(PEDESTRIAN_ATTRIBUTES)}

UPPER_COLOURS = {"upper_red": (200, 35, 40), "upper_white": (235, 235, 230), "upper_black": (30, 30, 34), "upper_blue": (35, 75, 180)}
LOWER_COLOURS = {"lower_black": (28, 28, 32), "lower_blue": (45, 70, 130)}
OTHER_UPPER = [(60, 140, 70), (130, 130, 135), (230, 200, 60), (120, 80, 50), (230, 140, 170), (110, 60, 150), (240, 140, 40)]
OTHER_LOWER = [(130, 130, 135), (185, 165, 120), (110, 75, 50), (220, 220, 215), (80, 100, 70)]
HAIR = [(25, 20, 18), (60, 40, 25), (110, 75, 40), (190, 160, 90)]
GREY_HAIR = [(200, 200, 200), (160, 160, 165), (230, 230, 228)]
SKIN = [(240, 205, 175), (225, 180, 140), (190, 140, 100), (140, 95, 65), (95, 65, 45)]


def sample_vector(rng: np.random.Generator) -> tuple[int, ...]:
    """One plausible attribute vector (exclusive groups respected)."""
    v = [0] * PEDESTRIAN_ATTRIBUTE_COUNT
    male = rng.random() < 0.5
    v[A["male"]] = int(male)
    age = rng.random()
    if age < 0.12:
        v[A["age_over_60"]] = 1
    elif age < 0.27:
        v[A["age_under_18"]] = 1
    v[A["hat"]] = int(rng.random() < 0.2)
    v[A["glasses"]] = int(rng.random() < (0.08 if v[A["age_under_18"]] else 0.22))
    v[A["short_sleeve"]] = int(rng.random() < 0.45)
    v[A["upper_stripes"]] = int(rng.random() < 0.2)
    up = rng.choice(["upper_red", "upper_white", "upper_black", "upper_blue", None], p=[0.15, 0.2, 0.25, 0.15, 0.25])
    if up is not None:
        v[A[up]] = 1
    lower = rng.choice(["trousers", "shorts"], p=[0.75, 0.25]) if male else rng.choice(["trousers", "shorts", "skirt"], p=[0.5, 0.15, 0.35])
    v[A[lower]] = 1
    lo = rng.choice(["lower_black", "lower_blue", None], p=[0.4, 0.3, 0.3])
    if lo is not None:
        v[A[lo]] = 1
    v[A["backpack"]] = int(rng.random() < 0.25)
    v[A["handbag"]] = int(rng.random() < (0.05 if male else 0.25))
    v[A["shoulder_bag"]] = int(rng.random() < 0.15)
    v[A["holding_object"]] = int(rng.random() < 0.2)
    v[A["face_mask"]] = int(rng.random() < 0.15)
    return tuple(v)


def attribute_text(v) -> str:
    return ",".join(str(int(x)) for x in v)


# --------------------------------------------------------------------------- captions


def caption(v, rng: np.random.Generator) -> str:
    """An LLM-style English description of the attributes (commas, apostrophes, full stops)."""
    has = {name: bool(v[i]) for i, name in enumerate(PEDESTRIAN_ATTRIBUTES)}
    male = has["male"]
    he, his, He, His = ("he", "his", "He", "His") if male else ("she", "her", "She", "Her")
    if has["age_under_18"]:
        noun = "boy" if male else "girl"
        person = rng.choice([f"a young {noun}", f"a {noun}", f"a child, a {noun},"])
    elif has["age_over_60"]:
        noun = "man" if male else "woman"
        person = rng.choice([f"an elderly {noun}", f"an older {noun}", f"a senior {noun}"])
    else:
        noun = "man" if male else "woman"
        person = rng.choice([f"a {noun}", f"an adult {noun}", f"a grown-up {noun}"])
    gender = "male" if male else "female"

    colour = next((n.split("_")[1] for n in UPPER_COLOURS if has[n]), None)
    sleeve = "short-sleeved" if has["short_sleeve"] else "long-sleeved"
    top = rng.choice(["top", "shirt", "T-shirt" if has["short_sleeve"] else "jacket"])
    top_desc = f"a {colour + ' ' if colour else ''}{sleeve} {top}"
    if has["upper_stripes"]:
        top_desc += " with stripes"
    lo_colour = next((n.split("_")[1] for n in LOWER_COLOURS if has[n]), None)
    lower = "trousers" if has["trousers"] else "shorts" if has["shorts"] else "a skirt"
    if lo_colour:
        lower = f"{lo_colour} {lower}" if lower != "a skirt" else f"a {lo_colour} skirt"
    outfit = f"{top_desc} and {lower}"

    extras = []
    if has["hat"]:
        extras.append(rng.choice(["a hat", "a cap"]))
    if has["glasses"]:
        extras.append("glasses")
    if has["face_mask"]:
        extras.append("a face mask")
    carry = []
    if has["backpack"]:
        carry.append(rng.choice([f"a backpack on {his} back", "a backpack"]))
    if has["handbag"]:
        carry.append("a handbag")
    if has["shoulder_bag"]:
        carry.append(rng.choice(["a shoulder bag", f"a bag over {his} shoulder"]))

    openers = [
        f"A {gender} pedestrian is someone who walks by on foot, {he}'s wearing {outfit}.",
        f"This is {person} walking down the street, {he}'s dressed in {outfit}.",
        f"In the picture there's {person} on foot, wearing {outfit}.",
        f"The pedestrian is {person}, and {he}'s got on {outfit}.",
    ]
    parts = [openers[int(rng.integers(len(openers)))]]
    if has["age_over_60"] and rng.random() < 0.6:
        parts.append(f"{His} hair's grey, so {he}'s probably over sixty.")
    if has["age_under_18"] and rng.random() < 0.6:
        parts.append(f"{He}'s quite small, clearly a child.")
    if extras:
        parts.append(f"{He}'s also wearing {_join(extras)}.")
    if carry:
        parts.append(rng.choice([f"{He}'s carrying {_join(carry)}.", f"{He} has {_join(carry)}, by the look of it."]))
    if has["holding_object"]:
        parts.append(rng.choice([f"{He}'s holding something in {his} hand.", f"In {his} hand, {he}'s holding an object."]))
    if len(parts) == 1:
        parts.append(rng.choice([f"{He}'s not carrying anything.", f"{He} doesn't seem to carry a bag, {he}'s just walking."]))
    return " ".join(parts)


def caption_hard(v, rng: np.random.Generator) -> str:
    """The same attributes as other people's code might word them: synonyms (pants, tee, purse,
    rucksack, spectacles), the clauses in another order or as a bare comma list, lower case, often
    no full stop."""
    has = {name: bool(v[i]) for i, name in enumerate(PEDESTRIAN_ATTRIBUTES)}
    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    male = has["male"]
    if has["age_under_18"]:
        person = pick(("boy", "young boy", "kid, a boy") if male else ("girl", "young girl", "kid, a girl"))
    elif has["age_over_60"]:
        person = pick(("old man", "elderly gentleman", "senior male") if male else ("old woman", "elderly lady", "senior female"))
    else:
        person = pick(("man", "guy", "male adult") if male else ("woman", "lady", "female adult"))
    colour = next((n.split("_")[1] for n in UPPER_COLOURS if has[n]), "")
    sleeve = pick(("short sleeve", "short-sleeved")) if has["short_sleeve"] else pick(("long sleeve", "long-sleeved"))
    top = f"{'striped ' if has['upper_stripes'] else ''}{colour + ' ' if colour else ''}{sleeve} {pick(('shirt', 'top', 'tee' if has['short_sleeve'] else 'coat'))}"
    lo_colour = next((n.split("_")[1] for n in LOWER_COLOURS if has[n]), "")
    lower = pick(("pants", "trousers")) if has["trousers"] else "shorts" if has["shorts"] else "skirt"
    lower = f"{lo_colour + ' ' if lo_colour else ''}{lower}"
    worn = [top, lower]
    if has["hat"]:
        worn.append(pick(("hat", "cap")))
    if has["glasses"]:
        worn.append(pick(("glasses", "spectacles", "eyeglasses")))
    if has["face_mask"]:
        worn.append(pick(("mask", "face mask")))
    carried = []
    if has["backpack"]:
        carried.append(pick(("backpack", "rucksack")))
    if has["handbag"]:
        carried.append(pick(("handbag", "purse")))
    if has["shoulder_bag"]:
        carried.append(pick(("shoulder bag", "messenger bag", "crossbody bag")))
    if has["holding_object"]:
        carried.append(pick(("something in hand", "an object in one hand")))
    worn = [worn[int(i)] for i in rng.permutation(len(worn))]
    style = int(rng.integers(4))
    if style == 0:  # a bare list, as an attribute tagger writes it
        text = ", ".join([person] + worn + carried)
    elif style == 1:
        text = f"{person} wearing {_join(worn)}" + (f", carrying {_join(carried)}" if carried else "")
    elif style == 2:
        text = (f"{person} with {_join(carried)}, dressed in " if carried else f"{person} dressed in ") + _join(worn)
    else:
        text = f"pedestrian: {person}; clothes: {_join(worn)}" + (f"; carries {_join(carried)}" if carried else "")
    text = f"{pick(('a', 'the', 'one'))} {text}" if style in (1, 2) and rng.random() < 0.6 else text
    if rng.random() < 0.4:
        text = text[0].upper() + text[1:]
    return text + ("." if rng.random() < 0.4 else "")


def _join(items: list[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


# --------------------------------------------------------------------------- drawing


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    wall = rng.uniform(70, 210, 3)
    img = draw.vertical_gradient(h, w, wall, wall * rng.uniform(0.6, 1.0))
    floor_y = rng.uniform(0.7, 0.9) * h
    g = rng.uniform(90, 180)
    img[int(floor_y):] = np.array([g, g * 0.97, g * 0.92], np.float32)
    draw.random_clutter(img, rng, int(rng.integers(1, 5)), (0.1 * w, 0.6 * w), region=(0, 0, w, floor_y))
    img += draw.smooth_noise(rng, h, w, 6.0)[:, :, None] * 8
    return img


def make_image(rng: np.random.Generator, v) -> np.ndarray:
    """One pedestrian crop (uint8 RGB, 64x128 to 96x192) showing attribute vector ``v``."""
    has = {name: bool(v[i]) for i, name in enumerate(PEDESTRIAN_ATTRIBUTES)}
    w = int(rng.integers(64, 97))
    h = int(round(2 * w * rng.uniform(0.95, 1.05)))
    img = _background(rng, h, w)
    child, old, male = has["age_under_18"], has["age_over_60"], has["male"]
    H = h * (rng.uniform(0.66, 0.74) if child else rng.uniform(0.86, 0.93))
    cx = w / 2 + rng.uniform(-0.06, 0.06) * w
    feet = h - rng.uniform(0.02, 0.05) * h
    top = feet - H
    head_r = H * (0.085 if child else 0.065)
    hy = top + head_r
    sh_y = top + head_r * 2 + 0.025 * H
    hip_y = top + (0.5 if child else 0.52) * H
    knee_y = hip_y + 0.25 * H
    sw = H * (0.13 if male else 0.115)  # half shoulder width
    hw = H * (0.095 if male else 0.11)  # half hip width
    stoop = 0.04 * H if old else 0.0
    skin = np.array(SKIN[int(rng.integers(len(SKIN)))], np.float32)
    hair = np.array((GREY_HAIR if old else HAIR)[int(rng.integers(len(GREY_HAIR) if old else len(HAIR)))], np.float32)
    up = next((np.array(c, np.float32) for n, c in UPPER_COLOURS.items() if has[n]), None)
    if up is None:
        up = np.array(OTHER_UPPER[int(rng.integers(len(OTHER_UPPER)))], np.float32)
    up = up * rng.uniform(0.85, 1.1)
    lo = next((np.array(c, np.float32) for n, c in LOWER_COLOURS.items() if has[n]), None)
    if lo is None:
        lo = np.array(OTHER_LOWER[int(rng.integers(len(OTHER_LOWER)))], np.float32)
    lo = lo * rng.uniform(0.85, 1.1)
    bag_c = rng.uniform(20, 200, 3)
    leg_w = H * 0.07
    arm_w = H * 0.055

    if has["backpack"]:  # the pack shows on both sides behind the torso
        draw.rect(img, cx - sw - 0.04 * H + stoop, sh_y + 0.02 * H, cx + sw + 0.04 * H + stoop, hip_y - 0.04 * H, bag_c * 0.8)
    if not male:  # long hair falls behind the shoulders
        draw.poly(img, [(cx - head_r * 1.15 + stoop, hy - head_r * 0.3), (cx + head_r * 1.15 + stoop, hy - head_r * 0.3),
                        (cx + head_r * 1.35 + stoop, sh_y + 0.09 * H), (cx - head_r * 1.35 + stoop, sh_y + 0.09 * H)], hair)
    # Legs (trousers, or skin below shorts / skirt) and shoes.
    spread = rng.uniform(0.0, 0.05) * H
    for s in (-1, 1):
        x_hip, x_foot = cx + s * hw * 0.5, cx + s * (hw * 0.5 + spread)
        draw.thick_line(img, (x_hip, hip_y), (x_foot, feet - 0.02 * H), skin, leg_w)
        if has["trousers"]:
            draw.thick_line(img, (x_hip, hip_y), (x_foot, feet - 0.03 * H), lo, leg_w * 1.1)
        elif has["shorts"]:
            f = 0.42
            draw.thick_line(img, (x_hip, hip_y), (x_hip + (x_foot - x_hip) * f, hip_y + (feet - hip_y) * f), lo, leg_w * 1.25)
        draw.ellipse(img, (x_foot + s * 0.01 * H, feet - 0.012 * H), (leg_w * 0.75, 0.018 * H), (30, 28, 26))
    if has["skirt"]:
        draw.poly(img, [(cx - hw, hip_y - 0.02 * H), (cx + hw, hip_y - 0.02 * H), (cx + hw * 1.6, knee_y), (cx - hw * 1.6, knee_y)], lo)
    # Torso (stooped a little for the elderly), stripes.
    torso = [(cx - sw + stoop, sh_y), (cx + sw + stoop, sh_y), (cx + hw, hip_y + 0.01 * H), (cx - hw, hip_y + 0.01 * H)]
    draw.poly(img, torso, up)
    if has["upper_stripes"]:
        stripe = np.where(up.mean() > 128, up * 0.35, np.minimum(255, up + 120))
        for y in np.arange(sh_y + 0.03 * H, hip_y - 0.01 * H, 0.05 * H):
            t = (y - sh_y) / (hip_y - sh_y)
            half = sw + (hw - sw) * t
            off = stoop * (1 - t)
            draw.rect(img, cx - half + off, y, cx + half + off, y + 0.02 * H, stripe)
    # Arms: sleeves in the top's colour, skin beyond; one forearm raised when holding something.
    holding_side = 1 if rng.random() < 0.5 else -1
    hand_bag_side = -holding_side
    for s in (-1, 1):
        shoulder = (cx + s * (sw - arm_w * 0.3) + stoop, sh_y + arm_w * 0.5)
        elbow = (cx + s * (sw + 0.02 * H) + stoop * 0.5, sh_y + 0.17 * H)
        if has["holding_object"] and s == holding_side:
            hand = (cx + s * 0.06 * H, sh_y + 0.16 * H)
        else:
            hand = (cx + s * (sw + 0.035 * H), hip_y + 0.02 * H)
        draw.thick_line(img, shoulder, elbow, up, arm_w)
        draw.thick_line(img, elbow, hand, skin if has["short_sleeve"] else up, arm_w * 0.9)
        if has["short_sleeve"]:
            mid = ((shoulder[0] + elbow[0]) / 2, (shoulder[1] + elbow[1]) / 2)
            draw.thick_line(img, mid, elbow, skin, arm_w * 0.85)
        draw.circle(img, hand, arm_w * 0.55, skin)
        if has["holding_object"] and s == holding_side:
            oc = [(20, 20, 25), (240, 240, 240), (200, 60, 40), (60, 120, 200)][int(rng.integers(4))]
            draw.rect(img, hand[0] - 0.03 * H, hand[1] - 0.05 * H, hand[0] + 0.03 * H, hand[1] + 0.02 * H, oc)
        if has["handbag"] and s == hand_bag_side:
            bx, by = hand
            draw.ellipse(img, (bx, by + 0.02 * H), (0.03 * H, 0.03 * H), bag_c * 0.6, thickness=max(1, int(0.008 * H)), start=180, end=360)
            draw.poly(img, [(bx - 0.045 * H, by + 0.02 * H), (bx + 0.045 * H, by + 0.02 * H), (bx + 0.06 * H, by + 0.1 * H), (bx - 0.06 * H, by + 0.1 * H)], bag_c)
    if has["backpack"]:
        for s in (-1, 1):
            draw.thick_line(img, (cx + s * sw * 0.6 + stoop, sh_y), (cx + s * sw * 0.55 + stoop * 0.5, sh_y + 0.18 * H), bag_c * 0.6, 0.025 * H)
    if has["shoulder_bag"]:
        s = -hand_bag_side if has["handbag"] else (1 if rng.random() < 0.5 else -1)
        draw.thick_line(img, (cx - s * sw * 0.7 + stoop, sh_y), (cx + s * hw, hip_y - 0.02 * H), bag_c * 0.55, 0.018 * H)
        draw.rect(img, cx + s * hw - 0.05 * H, hip_y - 0.04 * H, cx + s * hw + 0.05 * H, hip_y + 0.05 * H, bag_c * 0.9)
    # Neck, head, hair, hat, glasses, mask.
    hx = cx + stoop * 1.3
    draw.rect(img, hx - head_r * 0.35, hy + head_r * 0.7, hx + head_r * 0.35, sh_y + 0.01 * H, skin * 0.92)
    draw.ellipse(img, (hx, hy), (head_r * 0.88, head_r), skin)
    if male:
        draw.ellipse(img, (hx, hy - head_r * 0.35), (head_r * 0.95, head_r * 0.7), hair, start=180, end=360)
    else:
        draw.ellipse(img, (hx, hy - head_r * 0.25), (head_r * 1.05, head_r * 0.85), hair, start=180, end=360)
    if has["hat"]:
        hc = np.array([(200, 40, 40), (40, 80, 180), (40, 140, 70), (230, 190, 40), (30, 30, 35), (235, 120, 30), (150, 60, 160)][int(rng.integers(7))], np.float32)
        draw.ellipse(img, (hx, hy - head_r * 0.45), (head_r * 1.35, head_r * 0.22), hc)
        draw.ellipse(img, (hx, hy - head_r * 0.55), (head_r * 0.9, head_r * 0.75), hc, start=180, end=360)
    eye_y = hy - head_r * 0.05
    if has["glasses"]:
        for s in (-1, 1):
            draw.circle(img, (hx + s * head_r * 0.38, eye_y), head_r * 0.27, (20, 20, 20), thickness=max(1, int(head_r * 0.12)))
        draw.line(img, (hx - head_r * 0.12, eye_y), (hx + head_r * 0.12, eye_y), (20, 20, 20), 1)
    else:
        for s in (-1, 1):
            draw.circle(img, (hx + s * head_r * 0.35, eye_y), max(0.6, head_r * 0.1), (40, 30, 30))
    if has["face_mask"]:
        draw.ellipse(img, (hx, hy + head_r * 0.45), (head_r * 0.7, head_r * 0.4), (215, 230, 240))
    img = draw.to_uint8(img + 0.5)
    img = draw.add_grain(img, rng, rng.uniform(2, 5))
    return draw.light_jitter(img, rng, gain=(0.8, 1.15))
