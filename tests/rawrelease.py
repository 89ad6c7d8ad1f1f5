"""A small raw release in the organisers' layout, written independently of the demo generator.

Plain coloured images of assorted sizes, text files with the real files' quirks (tabs, CRLF, blank
lines, no final newline, captions with commas and apostrophes). Tests corrupt copies of it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

PED_VECTOR = "0,0,1,0,1,0,0,0,1,0,0,0,0,0,1,0,0,0,0,0,0"


def _jpeg(path: Path, size: tuple[int, int], value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value % 256, (3 * value) % 256, (7 * value) % 256)).save(path, quality=80)


def write_raw_release(root: Path, num_classes: int = 5) -> dict:
    """Write the release; return what a correct conversion must find."""
    root = Path(root)
    expected = {"cls": {}, "det": {}, "seg": {}, "retrieval": {}}
    t1 = root / "track1_train_data"
    for s, split in enumerate(("train", "val")):
        lines = []
        for i in range(6):
            name = f"{split}_{i:04d}.jpg"
            _jpeg(t1 / "cls" / split / name, (40 + 7 * i, 30 + 5 * i), i)
            sep = "\t" if i % 2 else " "
            lines.append(f"{name}{sep}{(i + s) % num_classes}")
        lines.insert(3, "")  # a blank line in the middle
        body = "\r\n".join(lines) if split == "train" else "\n".join(lines) + "\n\n"
        (t1 / "cls" / f"{split}.txt").write_bytes(body.encode())
        expected["cls"][split] = [(f"{split}_{i:04d}.jpg", (i + s) % num_classes) for i in range(6)]

        images, annotations = [], []
        for i in range(4):
            w, h = (96 + 16 * i, 64 + 8 * i)
            name = f"{split}{i}.jpg"
            _jpeg(t1 / "dec" / split / name, (w, h), 10 + i)
            images.append({"file_name": name, "id": 100 + i, "width": w, "height": h})
            for k in range(i):  # image 0 has no boxes
                x, y, bw, bh = 5.0 + 10 * k, 6.0, 8.5, 9.0
                annotations.append({
                    "id": len(annotations) + 1, "image_id": 100 + i, "category_id": 7 * k,
                    "bbox": [x, y, bw, bh], "area": bw * bh, "iscrowd": 0,
                    "segmentation": [[x, y, x + bw, y, x + bw, y + bh, x, y + bh]],
                })
        categories = [{"id": i, "name": n, "supercategory": "traffic_sign"}
                      for i, n in enumerate(["c%d" % j for j in range(45)])]
        (t1 / "dec" / f"{split}.json").write_text(
            json.dumps({"images": images, "annotations": annotations, "categories": categories}))
        expected["det"][split] = (len(images), len(annotations))

        for i in range(3):
            w, h = 48 + 4 * i, 32
            _jpeg(t1 / "seg" / "images" / split / f"s{i}.jpg", (w, h), i)
            label = np.full((h, w), i, np.uint8)
            label[0, :] = 255
            label[5:9, 5:9] = 18
            (t1 / "seg" / "label" / split).mkdir(parents=True, exist_ok=True)
            Image.fromarray(label).save(t1 / "seg" / "label" / split / f"s{i}.png")
        expected["seg"][split] = 3

    t1t = root / "track1_test_data"
    for i in range(3):
        _jpeg(t1t / "cls" / "test" / f"{i:05d}.jpg", (50, 40), i)
        _jpeg(t1t / "dec" / "test" / f"t{i}.jpg", (120, 90 + i), i)
        _jpeg(t1t / "seg" / "images" / "test" / f"{i:05d}.jpg", (48, 32), i)
    (t1t / "dec" / "test.txt").write_text("t2.jpg\nt0.jpg\nt1.jpg")  # no final newline

    for split in ("train", "val"):
        lines = []
        for i in range(4):
            name = f"{split}veh{i}.jpg"
            _jpeg(root / split / f"{split}_images" / name, (64, 48), i)
            colour = ("white", "red")[i % 2]
            lines.append(f"{name}$A {colour} Audi.$This is a {colour} Audi, isn't it? It's parked.")
        for i in range(3):
            name = f"{90000 + i:06d}"
            _jpeg(root / split / f"{split}_images" / f"{name}.jpg", (32, 64), i)
            lines.append(f"{name}${PED_VECTOR}$A female pedestrian is someone who walks, she's "
                         f"wearing a coat, trousers and shoes.")
        (root / split / f"{split}_label.txt").write_bytes(("\r\n".join(lines) + "\r\n").encode())
        expected["retrieval"][split] = lines
    for i in range(3):
        _jpeg(root / "test" / "test_images" / f"vehicle_{i + 1:07d}.jpg", (64, 48), i)
        _jpeg(root / "test" / "test_images" / f"{i:06d}.jpg", (32, 64), i)
    (root / "test" / "test_text.txt").write_text("This is a white Audi.\n\nA man, who's walking.\n")
    return expected
