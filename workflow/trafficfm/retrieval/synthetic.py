"""A small synthetic canonical retrieval dataset (docs/data-contract.md form), for tests and
benchmarks that must not wait for the demo release.

Vehicles: a body whose colour, shape (type) and badge (brand) are drawn in the pixels;
pedestrians: a figure whose gender and attribute bits are drawn as coloured marks. Attribute
texts and captions follow the organisers' forms (``A white Audi Sedan.``; 21 comma-separated 0/1
values), several images share each attribute text, and the pedestrian vectors are chosen so
that attribute inclusion happens.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from ..data.classes import PEDESTRIAN_ATTRIBUTE_COUNT

COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220), "white": (240, 240, 240), "black": (20, 20, 20),
           "yellow": (230, 210, 30), "green": (40, 170, 60)}
TYPES = ("Sedan", "SUV", "Bus", "Truck")
BRANDS = {"Audi": (255, 0, 255), "BMW": (0, 255, 255), "Toyota": (255, 128, 0)}
PED_WORDS = ("hat", "glasses", "a handbag", "a shoulder bag", "a backpack", "long sleeves", "short sleeves",
             "a logo", "stripes", "plaid", "trousers", "a skirt", "shorts", "boots", "a jacket", "a coat",
             "a scarf", "gloves", "an umbrella", "a phone")


def _vehicle_image(colour: str, vtype: str, brand: str, rng: np.random.Generator, size=(96, 64)) -> Image.Image:
    image = Image.new("RGB", size, tuple(int(v) for v in rng.integers(90, 160, 3)))
    draw = ImageDraw.Draw(image)
    w, h = size
    top = {"Sedan": 0.45, "SUV": 0.3, "Bus": 0.1, "Truck": 0.2}[vtype]
    draw.rectangle([int(0.1 * w), int(top * h), int(0.9 * w), int(0.85 * h)], fill=COLOURS[colour])
    if vtype == "Truck":
        draw.rectangle([int(0.1 * w), int(0.2 * h), int(0.35 * h), int(0.85 * h)], fill=(80, 80, 80))
    draw.ellipse([int(0.45 * w), int(0.55 * h), int(0.55 * w), int(0.7 * h)], fill=BRANDS[brand])
    return image


def _pedestrian_image(vector: tuple[int, ...], rng: np.random.Generator, size=(48, 96)) -> Image.Image:
    image = Image.new("RGB", size, tuple(int(v) for v in rng.integers(90, 160, 3)))
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.ellipse([int(0.35 * w), 2, int(0.65 * w), int(0.2 * h)], fill=(255, 200, 160))
    draw.rectangle([int(0.25 * w), int(0.2 * h), int(0.75 * w), int(0.95 * h)],
                   fill=(200, 40, 120) if vector[0] else (40, 80, 200))
    for bit in range(1, len(vector)):
        if vector[bit]:
            y = int(0.22 * h + (bit - 1) * 0.036 * h)
            draw.rectangle([int(0.3 * w), y, int(0.7 * w), y + 2], fill=((bit * 53) % 256, (bit * 97) % 256, 255))
    return image


def _pedestrian_caption(vector: tuple[int, ...]) -> str:
    gender = "female" if vector[0] else "male"
    items = [PED_WORDS[i - 1] for i in range(1, len(vector)) if vector[i]]
    return f"A {gender} pedestrian with {', '.join(items) or 'nothing special'}."


def make_canonical(out_dir: str | Path, vehicles: int = 48, pedestrians: int = 48, seed: int = 0,
                   splits: dict | None = None, test_images: int = 24, test_queries: int = 30,
                   duplicate_captions: bool = False) -> Path:
    """Write ``out_dir/release`` (images) and the canonical tables under ``out_dir/retrieval``.

    ``splits`` maps split name -> fraction of the pairs (default train 0.75, val 0.25). Returns the
    canonical dataset directory.
    """
    out_dir = Path(out_dir)
    root, canonical = out_dir / "release", out_dir / "retrieval"
    rng = np.random.default_rng(seed)
    splits = splits or {"train": 0.75, "val": 0.25}
    vehicle_attrs, ped_vectors = _attribute_pools(rng)
    records = _records(vehicles, pedestrians, vehicle_attrs, ped_vectors, duplicate_captions, rng)
    order = rng.permutation(len(records))
    bounds = np.cumsum([0] + [round(f * len(records)) for f in splits.values()])
    bounds[-1] = len(records)
    canonical.mkdir(parents=True, exist_ok=True)
    counts = {}
    for (split, _), lo, hi in zip(splits.items(), bounds[:-1], bounds[1:]):
        chosen = sorted(order[lo:hi], key=lambda j: (records[j][0] != "vehicle", j))  # vehicles first
        counts[split] = {"pairs": _write_split(root, canonical, split, [records[j] for j in chosen])}
    counts["test"] = _write_test(root, canonical, test_images, test_queries, vehicle_attrs, ped_vectors, rng)
    manifest = {"track": "retrieval", "root": str(root.resolve()), "splits": list(splits),
                "pedestrian_attributes": PEDESTRIAN_ATTRIBUTE_COUNT, "counts": counts, "warnings": []}
    (canonical / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return canonical


def _attribute_pools(rng) -> tuple[list, list]:
    """Vehicle (colour, type, brand) triples and pedestrian vectors, some supersets of others so
    that attribute inclusion occurs."""
    vehicle_attrs = [(c, t, b) for c in list(COLOURS)[:4] for t in TYPES[:3] for b in BRANDS][:12]
    base_vectors = []
    for _ in range(6):
        v = [int(rng.integers(0, 2))] + [0] * (PEDESTRIAN_ATTRIBUTE_COUNT - 1)
        for bit in rng.choice(np.arange(1, PEDESTRIAN_ATTRIBUTE_COUNT), size=2, replace=False):
            v[bit] = 1
        base_vectors.append(tuple(v))
    ped_vectors = list(base_vectors)
    for v in base_vectors[:3]:
        w = list(v)
        w[int(rng.choice([i for i in range(1, PEDESTRIAN_ATTRIBUTE_COUNT) if not v[i]]))] = 1
        ped_vectors.append(tuple(w))
    return vehicle_attrs, ped_vectors


def _records(vehicles: int, pedestrians: int, vehicle_attrs, ped_vectors, duplicate_captions: bool, rng) -> list:
    """(kind, name, attribute, caption, image) of every labelled pair."""
    records = []
    for i in range(vehicles):
        colour, vtype, brand = vehicle_attrs[int(rng.integers(len(vehicle_attrs)))]
        attribute = f"A {colour} {brand} {vtype}."
        caption = f"This is a {colour} {brand} {vtype}." if duplicate_captions or i % 2 else \
            f"A {colour} {vtype} made by {brand}."
        records.append(("vehicle", f"v{i:05d}.jpg", attribute, caption, _vehicle_image(colour, vtype, brand, rng)))
    for i in range(pedestrians):
        vector = ped_vectors[int(rng.integers(len(ped_vectors)))]
        records.append(("pedestrian", f"{i:06d}", ",".join(map(str, vector)), _pedestrian_caption(vector),
                        _pedestrian_image(vector, rng)))
    return records


def _write_split(root: Path, canonical: Path, split: str, records: list) -> int:
    folder = root / split / f"{split}_images"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for kind, name, attribute, caption, image in records:
        file_name = name if name.endswith(".jpg") else f"{name}.jpg"
        image.save(folder / file_name, quality=95)
        rows.append((f"{split}/{split}_images/{file_name}", name, kind, attribute, caption))
    pd.DataFrame(rows, columns=["image", "name", "kind", "attribute", "caption"]).to_csv(
        canonical / f"{split}.csv", index=False)
    return len(rows)


def _write_test(root: Path, canonical: Path, test_images: int, test_queries: int, vehicle_attrs, ped_vectors,
                rng) -> dict:
    """Fresh test images and queries drawn from the same generators."""
    folder = root / "test" / "test_images"
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(test_images):
        if i % 2 == 0:
            colour, vtype, brand = vehicle_attrs[int(rng.integers(len(vehicle_attrs)))]
            image, name = _vehicle_image(colour, vtype, brand, rng), f"vehicle_{i:07d}.jpg"
        else:
            image, name = _pedestrian_image(ped_vectors[int(rng.integers(len(ped_vectors)))], rng), f"{i:06d}.jpg"
        image.save(folder / name, quality=95)
        names.append(name)
    names.sort()
    pd.DataFrame({"image": [f"test/test_images/{n}" for n in names], "name": names,
                  "kind": ["vehicle" if n.startswith("vehicle_") else "pedestrian" for n in names]}).to_csv(
        canonical / "test_images.csv", index=False)
    texts = []
    for i in range(test_queries):
        if i < test_queries // 2:
            colour, vtype, brand = vehicle_attrs[int(rng.integers(len(vehicle_attrs)))]
            texts.append(f"This is a {colour} {brand} {vtype}.")
        else:
            texts.append(_pedestrian_caption(ped_vectors[int(rng.integers(len(ped_vectors)))]))
    pd.DataFrame({"query": range(len(texts)), "text": texts}).to_csv(canonical / "test_queries.csv", index=False)
    return {"images": len(names), "queries": len(texts)}
