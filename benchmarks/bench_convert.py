"""Benchmark the converters on a release simulated at the real challenge's scale.

Real scale: 136,117 retrieval lines (train) plus a val split, 8,144 + 8,041 classification images,
6,103 COCO detection images, 7,000 segmentation pairs. Images are hard links of a few template
files (the converters open every one of them, so the file-system work is real; only the bytes
repeat). Prints seconds, records/s and peak memory (RSS high-water mark of a fresh process) per
converter.

    python benchmarks/bench_convert.py [--scale 1.0] [--workdir /tmp/bench-convert]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image

REAL = {"retrieval_train": 136_117, "retrieval_val": 10_000, "cls_train": 8_144, "cls_val": 2_000,
        "cls_test": 8_041, "det_train": 6_103, "det_val": 1_000, "det_test": 3_067, "seg_train": 7_000,
        "seg_val": 1_000, "seg_test": 1_000}
PED = "0,0,1,0,1,0,0,0,1,0,0,0,0,0,1,0,0,0,0,0,0"


def _template(path: Path, size, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), np.uint8)).save(path, quality=85)
    return path


def _links(template: Path, folder: Path, names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    source = template
    for index, name in enumerate(names):
        if index and index % 50_000 == 0:  # file systems cap the links per inode (ext4: 65,000)
            source = template.with_name(f"{template.stem}-{folder.name}-{index}{template.suffix}")
            shutil.copyfile(template, source)
        os.link(source, folder / name)


def simulate(root: Path, scale: float) -> dict:
    n = {k: max(1, int(v * scale)) for k, v in REAL.items()}
    templates = root / "templates"
    templates.mkdir(parents=True)
    car = _template(templates / "car.jpg", (320, 240), 0)
    sign = _template(templates / "sign.jpg", (2048, 2048), 1)
    street = _template(templates / "street.jpg", (1280, 720), 2)
    crop = _template(templates / "crop.jpg", (96, 192), 3)
    # Label maps are piecewise constant: upscale a coarse random grid of class ids.
    coarse = np.random.default_rng(4).integers(0, 19, (18, 32), dtype=np.uint8)
    label = np.kron(coarse, np.ones((40, 40), np.uint8))
    label[::97] = 255
    Image.fromarray(label).save(templates / "label.png")

    t1, t1t = root / "track1_train_data", root / "track1_test_data"
    for split in ("train", "val"):
        names = [f"{i:05d}.jpg" for i in range(n[f"cls_{split}"])]
        _links(car, t1 / "cls" / split, names)
        (t1 / "cls" / f"{split}.txt").write_text("\r\n".join(f"{m}\t{i % 196}" for i, m in enumerate(names)))
        names = [f"{i:06d}.jpg" for i in range(n[f"det_{split}"])]
        _links(sign, t1 / "dec" / split, names)
        images = [{"file_name": m, "id": i, "width": 2048, "height": 2048} for i, m in enumerate(names)]
        anns = [{"id": k, "image_id": k // 3, "category_id": k % 45, "bbox": [10.0 + k % 1900, 50.0, 12.0, 12.0],
                 "area": 144.0, "iscrowd": 0} for k in range(3 * len(names))]
        (t1 / "dec" / f"{split}.json").write_text(json.dumps({"images": images, "annotations": anns,
                                                              "categories": []}))
        names = [f"{i:06d}" for i in range(n[f"seg_{split}"])]
        _links(street, t1 / "seg" / "images" / split, [f"{m}.jpg" for m in names])
        _links(templates / "label.png", t1 / "seg" / "label" / split, [f"{m}.png" for m in names])
    _links(car, t1t / "cls" / "test", [f"{i:05d}.jpg" for i in range(n["cls_test"])])
    names = [f"t{i:06d}.jpg" for i in range(n["det_test"])]
    _links(sign, t1t / "dec" / "test", names)
    (t1t / "dec" / "test.txt").write_text("\n".join(names))
    _links(street, t1t / "seg" / "images" / "test", [f"{i:06d}.jpg" for i in range(n["seg_test"])])

    for split in ("train", "val"):
        total = n[f"retrieval_{split}"]
        vehicles = total * 46 // 136
        lines, names = [], []
        for i in range(total):
            if i < vehicles:
                name = f"v{i:09d}.jpg"
                lines.append(f"{name}$A white Audi Sedan.$This is a white Audi, it's a sedan, parked.")
                names.append(name)
            else:
                name = f"{i:06d}"
                lines.append(f"{name}${PED}$A female pedestrian is someone who walks, she's wearing a coat.")
                names.append(name + ".jpg")
        _links(crop, root / split / f"{split}_images", names)
        (root / split / f"{split}_label.txt").write_text("\n".join(lines) + "\n")
    _links(crop, root / "test" / "test_images", [f"vehicle_{i:07d}.jpg" for i in range(1000)])
    (root / "test" / "test_text.txt").write_text("This is a white Audi.\n" * 1000)
    return n


def _run(queue, name: str, root: str, out: str) -> None:
    from trafficfm.data.convert_allinone import (
        ErrorCollector, convert_cls_split, convert_det_split, convert_seg_split)
    from trafficfm.config import load
    from trafficfm.data.convert_allinone import TT100K_CATEGORIES
    from trafficfm.data.convert_retrieval import convert_retrieval

    layout = load().data.layout

    root_path = Path(root)
    categories = [{"id": i, "name": c, "supercategory": "traffic_sign"} for i, c in enumerate(TT100K_CATEGORIES)]
    errors = ErrorCollector("fail")
    start = time.perf_counter()
    if name == "retrieval":
        manifest = convert_retrieval(root, out, layout.retrieval, "fail")
        records = sum(v.get("pairs", 0) for v in manifest["counts"].values())
    elif name == "classification":
        records = sum(len(convert_cls_split(root_path, "track1_train_data", s, layout.allinone, 196, errors))
                      for s in ("train", "val"))
    elif name == "detection":
        records = sum(len(convert_det_split(root_path, "track1_train_data", s, layout.allinone, categories,
                                            errors)["images"]) for s in ("train", "val"))
    else:
        records = sum(len(convert_seg_split(root_path, "track1_train_data", s, layout.allinone, 19, errors, True))
                      for s in ("train", "val"))
    seconds = time.perf_counter() - start
    errors.raise_if_failing(name)
    queue.put((seconds, records, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the real release size")
    parser.add_argument("--workdir", default="/tmp/bench-convert")
    args = parser.parse_args()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    start = time.perf_counter()
    counts = simulate(work / "release", args.scale)
    print(f"simulated release at scale {args.scale} in {time.perf_counter() - start:.1f} s: {counts}")
    print(f"{'converter':<16}{'records':>10}{'seconds':>10}{'records/s':>12}{'peak RSS MB':>13}")
    context = mp.get_context("spawn")  # a fresh process per converter: honest peak memory
    for name in ("retrieval", "classification", "detection", "segmentation"):
        queue = context.Queue()
        process = context.Process(target=_run, args=(queue, name, str(work / "release"), str(work / "out")))
        process.start()
        seconds, records, peak = queue.get()
        process.join()
        print(f"{name:<16}{records:>10}{seconds:>10.2f}{records / seconds:>12.0f}{peak:>13.0f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
