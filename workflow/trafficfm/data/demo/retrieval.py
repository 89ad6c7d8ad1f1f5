"""The retrieval part of the demo release: vehicle and pedestrian crops, label files, queries.

Attribute texts come from two fixed pools drawn once from the seed (vehicles: colour x type x
brand, one in seven without a type, as in the organisers' ``A white Audi.``; pedestrians: 21-value
vectors), sized so that a training text has about ten images; each split uses a subset of the pool
and spreads its images evenly over it, so every text of a split has several images.

Names, as in the organisers' files: train/val vehicles are ten random lowercase letters + ``.jpg``
and appear in the label file *with* the extension; pedestrians are all-digit (``090000.jpg`` on
disk) and appear in the label file *without* it (``090000$...``); test vehicles are
``vehicle_0000001.jpg`` ... and test pedestrians continue the all-digit numbering. Label files list
vehicles first, then pedestrians. ``test_text.txt`` holds the queries (captions; vehicle queries
first; one query is repeated on purpose when there are 20 or more, since real query lists may
repeat a text). The hidden test truth goes to a separate folder outside the release.

The ``hard`` profile keeps names and formats and changes what independently drawn releases
plausibly do differently: five more paints in close shades (:data:`.vehicles.HARD_COLOURS`),
about four training images per text and two per validation/test text, a pool half again as large
as the training texts (so about a third of the validation and test texts never occur in
training), captions worded by other code (:func:`.vehicles.caption_hard`,
:func:`.pedestrians.caption_hard`), and harsher crops (:func:`.hard.retrieval_look`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import draw, hard, pedestrians, vehicles
from ..classes import VEHICLE_TYPES

# Share of vehicles among the images of a split (the real release: 46k/136k train, 7.6k/17.6k test).
VEHICLE_FRACTION = {"train": 0.34, "val": 0.34, "test": 0.43}
IMAGES_PER_TEXT = 10  # training images per attribute text, on average
MIN_IMAGES_PER_TEXT = 4  # a split uses at most n_images / this many texts
NO_TYPE_FRACTION = 1 / 7  # vehicle texts without a type ("A white Audi.")
# Per profile: training images per text, the fewest images per text of each split (which caps its
# texts) and the pool's size relative to the training texts (above 1: texts unseen in training).
TEXTS = {
    "demo": dict(per_text=IMAGES_PER_TEXT, min_per_text=dict.fromkeys(("train", "val", "test"), MIN_IMAGES_PER_TEXT), pool=1.0),
    "hard": dict(per_text=4, min_per_text={"train": 4, "val": 2, "test": 2}, pool=1.5),
}


@dataclass
class Item:
    file: str  # file name on disk
    name: str  # name field of the label file (pedestrians: no extension)
    kind: str  # vehicle | pedestrian
    attribute: str
    caption: str
    spec: tuple  # (colour, type, brand) or the attribute vector

    def line(self) -> str:
        return f"{self.name}${self.attribute}${self.caption}"


def vehicle_pool(seed: int, size: int, colours=vehicles.VEHICLE_COLOURS) -> list[tuple[str, str | None, str]]:
    rng = draw.rng_for(seed, "ret-vehicle-pool")
    combos = [(c, t, b) for c in colours for t in VEHICLE_TYPES for b in vehicles.BRANDS]
    order = rng.permutation(len(combos))[: max(1, min(size, len(combos)))]
    pool: dict[tuple, None] = {}
    for k in order:
        c, t, b = combos[int(k)]
        pool.setdefault((c, None if rng.random() < NO_TYPE_FRACTION else t, b), None)
    return list(pool)


def pedestrian_pool(seed: int, size: int) -> list[tuple[int, ...]]:
    rng = draw.rng_for(seed, "ret-pedestrian-pool")
    seen: dict[tuple[int, ...], None] = {}
    tries = 0
    while len(seen) < max(1, size) and tries < size * 50 + 100:
        seen.setdefault(pedestrians.sample_vector(rng), None)
        tries += 1
    return list(seen)


def split_counts(n_images: int, split: str) -> tuple[int, int]:
    """(vehicles, pedestrians) of a split of ``n_images``; both at least 1 when n_images >= 2."""
    nv = int(round(n_images * VEHICLE_FRACTION[split]))
    if n_images >= 2:
        nv = min(max(nv, 1), n_images - 1)
    return nv, n_images - nv


def pools_for(seed: int, n_train: int, profile: str = "demo") -> tuple[list, list]:
    nv, npd = split_counts(n_train, "train")
    per, grow = TEXTS[profile]["per_text"], TEXTS[profile]["pool"]
    colours = vehicles.PAINTS if profile == "hard" else vehicles.VEHICLE_COLOURS
    return (vehicle_pool(seed, max(2, int(nv // per * grow)), colours), pedestrian_pool(seed, max(2, int(npd // per * grow))))


def _spread(rng: np.random.Generator, pool: list, n: int, min_per_text: int = MIN_IMAGES_PER_TEXT) -> list:
    """``n`` picks from a subset of ``pool``, as evenly as possible (each used >= n // k times)."""
    if n == 0:
        return []
    k = max(1, min(len(pool), n // min_per_text))
    subset = [pool[int(i)] for i in rng.permutation(len(pool))[:k]]
    picks = np.resize(np.arange(k), n)
    return [subset[int(i)] for i in rng.permutation(picks)]


def captioners(profile: str):
    """(vehicle caption, pedestrian caption) functions of a profile."""
    if profile == "hard":
        return vehicles.caption_hard, pedestrians.caption_hard
    return vehicles.caption, pedestrians.caption


def plan_split(seed: int, split: str, n_images: int, pools, names: "NameBook", profile: str = "demo") -> list[Item]:
    """Which images a split holds (vehicles first), with names, attributes and captions."""
    rng = draw.rng_for(seed, "ret-plan", split)
    nv, npd = split_counts(n_images, split)
    least = TEXTS[profile]["min_per_text"][split]
    vcap, pcap = captioners(profile)
    items = []
    for i, (c, t, b) in enumerate(_spread(rng, pools[0], nv, least)):
        file = names.vehicle(split, i)
        items.append(Item(file, file, "vehicle", vehicles.attribute_text(c, t, b), vcap(c, t, b, rng), (c, t, b)))
    for v in _spread(rng, pools[1], npd, least):
        stem = names.pedestrian()
        items.append(Item(stem + ".jpg", stem, "pedestrian", pedestrians.attribute_text(v), pcap(v, rng), v))
    return items


class NameBook:
    """Unique file names across splits, assigned in generation order (hence deterministic)."""

    def __init__(self, seed: int, total_pedestrians: int):
        self.rng = draw.rng_for(seed, "ret-names")
        self.used: set[str] = set()
        self.next_ped = 0
        self.ped_width = max(6, len(str(total_pedestrians)))

    def vehicle(self, split: str, index: int) -> str:
        if split == "test":
            return f"vehicle_{index + 1:07d}.jpg"
        while True:
            name = draw.random_name(self.rng, 10) + ".jpg"
            if name not in self.used:
                self.used.add(name)
                return name

    def pedestrian(self) -> str:
        stem = f"{self.next_ped:0{self.ped_width}d}"
        self.next_ped += 1
        return stem


def render(seed: int, split: str, index: int, item: Item, profile: str = "demo") -> tuple[np.ndarray, int]:
    """The image of ``item`` and its JPEG quality."""
    rng = draw.rng_for(seed, "ret-image", split, index)
    if item.kind == "vehicle":
        c, t, b = item.spec
        if t is None:  # the text omits the type, the picture still shows one
            t = VEHICLE_TYPES[int(rng.integers(len(VEHICLE_TYPES)))]
        img = vehicles.make_image(rng, c, t, b, "cctv" if split == "test" else "web")
    else:
        img = pedestrians.make_image(rng, item.spec)
    quality = int(rng.integers(80, 96))
    if profile == "hard":
        img = hard.retrieval_look(img, rng, item.kind, split)
        quality = min(quality, int(rng.integers(55, 96)))
    return img, quality


def make_queries(seed: int, test_items: list[Item], n_queries: int, profile: str = "demo") -> list[tuple[str, str]]:
    """(query text, attribute) pairs: vehicle queries first, texts drawn from those of the test
    gallery (distinct while they last); the last pedestrian query repeats the first one when
    there are 20 or more queries."""
    rng = draw.rng_for(seed, "ret-queries")
    veh = sorted({(it.attribute, it.spec) for it in test_items if it.kind == "vehicle"}, key=lambda x: x[0])
    ped = sorted({(it.attribute, it.spec) for it in test_items if it.kind == "pedestrian"}, key=lambda x: x[0])
    n_v = sum(it.kind == "vehicle" for it in test_items)
    nq_v = int(round(n_queries * n_v / max(1, len(test_items))))
    if veh and ped and n_queries >= 2:
        nq_v = min(max(nq_v, 1), n_queries - 1)
    elif not ped:
        nq_v = n_queries
    elif not veh:
        nq_v = 0

    def pick(pool, n):
        if n == 0 or not pool:
            return []
        idx = rng.permutation(len(pool)) if n <= len(pool) else rng.integers(0, len(pool), n)
        return [pool[int(i)] for i in idx[:n]]

    vcap, pcap = captioners(profile)
    queries = [(vcap(c, t, b, rng), attr) for attr, (c, t, b) in pick(veh, nq_v)]
    ped_q = [(pcap(v, rng), attr) for attr, v in pick(ped, n_queries - nq_v)]
    if len(queries) + len(ped_q) >= 20 and len(ped_q) >= 2:
        ped_q[-1] = ped_q[0]
    return queries + ped_q


def write_split(root: Path, seed: int, split: str, items: list[Item], image_dir: str, profile: str = "demo") -> None:
    folder = root / image_dir
    folder.mkdir(parents=True, exist_ok=True)
    for i, item in enumerate(items):
        img, quality = render(seed, split, i, item, profile)
        draw.save_jpeg(folder / item.file, img, quality)
