"""Benchmark of the submission stage at the real test-set scale.

* AllInOne: 1,000 segmentation predictions of 1280x720 turned into polygons, with the rest of a
  full test submission (8,041 classification answers, 3,067 detection images x 50 boxes), built,
  validated and zipped exactly as ``rule package_allinone`` does;
* retrieval: 10,000 queries x 10 names over a 17,611-image gallery into the retrieval JSON.

The label maps imitate a segmentation network's output on a street scene (see
:func:`network_like_map`): several blobby regions per class with smooth, curved borders, not pixel
noise and not staircases. Each part is measured in a fresh process: wall time per step and peak resident memory
(``VmHWM``; the Python + numpy/OpenCV/pandas imports alone take about 120 MB of it).

    python benchmarks/bench_submission.py                 # the full scale (a few minutes on 2 cores)
    python benchmarks/bench_submission.py --images 100    # quicker
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WIDTH, HEIGHT, SEG_CLASSES = 1280, 720, 19


def peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM: reset by exec, unlike ru_maxrss on Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# Objects drawn as bumps on their class's score field: mean count per image, half-width and
# half-height in 1/8-resolution pixels (cars wide, poles thin and tall, ...).
OBJECTS = {13: (6, 10, 5), 11: (4, 2, 5), 5: (6, 0.6, 10), 7: (3, 1.5, 1.5), 6: (2, 0.8, 1.6), 14: (1, 14, 8),
           15: (1, 16, 9), 18: (1, 2, 2), 12: (1, 1.5, 3), 17: (1, 2, 2), 4: (2, 20, 2), 3: (1, 12, 4),
           16: (1, 25, 8)}


def network_like_map(rng: np.random.Generator) -> np.ndarray:
    """Score fields at 1/8 resolution (sky, building, vegetation, road, sidewalk, terrain bands with
    low-frequency noise; objects as bumps), upsampled bilinearly and arg-maxed like a network's
    output: 15-18 classes, ~100-170 regions, ~13,000 contour points per map."""
    import cv2

    h, w = HEIGHT // 8, WIDTH // 8
    rows = (np.arange(h, dtype=np.float32) / h)[:, None]

    def noise(cell: int) -> np.ndarray:
        small = rng.normal(0, 1, (h // cell + 2, w // cell + 2)).astype(np.float32)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)

    fields = np.full((SEG_CLASSES, h, w), -9.0, np.float32)
    fields[10] = 12 * (0.35 - rows) + noise(10)  # sky
    fields[2] = 2.0 - 8 * np.abs(rows - 0.42) + 1.5 * noise(8)  # building
    fields[8] = 1.5 - 8 * np.abs(rows - 0.45) + 2.0 * noise(6)  # vegetation
    fields[0] = 12 * (rows - 0.62) + noise(10)  # road
    fields[1] = 1.0 - 14 * np.abs(rows - 0.63) + 1.5 * noise(5)  # sidewalk
    fields[9] = -12 * np.abs(rows - 0.6) + 1.5 * noise(5)  # terrain
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for c, (count, sx, sy) in OBJECTS.items():
        for _ in range(rng.poisson(count)):
            cx, cy, s = rng.uniform(0, w), rng.uniform(0.35 * h, 0.75 * h), rng.uniform(0.6, 1.6)
            bump = 12 * np.exp(-(((xx - cx) / (sx * s)) ** 2 + ((yy - cy) / (sy * s)) ** 2) / 2) - 4
            fields[c] = np.maximum(fields[c], bump)
    up = np.stack([cv2.resize(f, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR) for f in fields])
    return up.argmax(axis=0).astype(np.uint8)


def make_allinone(directory: Path, images: int, seed: int = 0) -> None:
    """A canonical test split and its predictions (written once, outside the measured process)."""
    import pandas as pd
    from PIL import Image

    rng = np.random.default_rng(seed)
    data, pred = directory / "data", directory / "pred"
    (pred / "seg_test").mkdir(parents=True)
    data.mkdir()
    n_cls, n_det = 8041, 3067
    (data / "manifest.json").write_text(json.dumps({
        "track": "allinone", "root": str(directory), "cls_classes": [str(i) for i in range(196)],
        "det_categories": [{"id": i, "name": f"c{i}"} for i in range(45)],
        "seg_classes": [f"s{i}" for i in range(SEG_CLASSES)], "ignore_index": 255}))
    names = [f"{i:05d}.jpg" for i in range(1, n_cls + 1)]
    pd.DataFrame({"image": [f"cls/test/{n}" for n in names], "label": -1, "width": 400, "height": 300}).to_csv(
        data / "cls_test.csv", index=False)
    pd.DataFrame({"name": names, "label": rng.integers(0, 196, n_cls)}).to_csv(pred / "cls_test.csv", index=False)
    (data / "det_test.json").write_text(json.dumps({"images": [
        {"id": i, "file_name": f"dec/test/{i}.jpg", "width": 2048, "height": 2048} for i in range(1, n_det + 1)],
        "annotations": [], "categories": []}))
    xy = rng.uniform(0, 2000, size=(n_det * 50, 2))
    wh = rng.uniform(8, 48, size=(n_det * 50, 2))
    boxes = [{"image_id": i // 50 + 1, "category_id": int(c), "bbox": [float(x), float(y), float(w), float(h)],
              "score": float(s)}
             for i, ((x, y), (w, h), c, s) in enumerate(zip(xy, wh, rng.integers(0, 45, n_det * 50),
                                                            rng.uniform(0, 1, n_det * 50)))]
    (pred / "det_test.json").write_text(json.dumps(boxes))
    stems = [f"{i:05d}" for i in range(images)]
    pd.DataFrame({"image": [f"seg/images/test/{s}.jpg" for s in stems], "label": "", "width": WIDTH,
                  "height": HEIGHT}).to_csv(data / "seg_test.csv", index=False)
    bases = [network_like_map(rng) for _ in range(min(images, 100))]
    for i, stem in enumerate(stems):  # 100 distinct maps, shifted and mirrored into 1,000
        label = np.roll(bases[i % len(bases)], int(rng.integers(0, WIDTH)), axis=1)
        Image.fromarray(label[:, ::-1] if (i // len(bases)) % 2 else label).save(pred / "seg_test" / f"{stem}.png")


def make_retrieval(directory: Path, queries: int = 10000, gallery: int = 17611, seed: int = 0) -> None:
    import pandas as pd

    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True)
    (directory / "manifest.json").write_text(json.dumps({"track": "retrieval", "root": str(directory)}))
    names = [f"vehicle_{i:07d}.jpg" for i in range(7611)] + [f"{i:06d}.jpg" for i in range(gallery - 7611)]
    pd.DataFrame({"image": [f"test/test_images/{n}" for n in names], "name": names, "kind": "x"}).to_csv(
        directory / "test_images.csv", index=False)
    texts = [f"This is a {c} car number {i}, isn't it?" for i, c in enumerate(rng.choice(["red", "grey"], queries))]
    pd.DataFrame({"query": range(queries), "text": texts}).to_csv(directory / "test_queries.csv", index=False)
    top = np.stack([rng.choice(gallery, 10, replace=False) for _ in range(queries)])
    pd.DataFrame({"query": np.repeat(np.arange(queries), 10), "text": np.repeat(texts, 10),
                  "rank": np.tile(np.arange(1, 11), queries), "name": np.asarray(names)[top.ravel()]}).to_csv(
        directory / "test_rankings.csv", index=False)


def measure_allinone(directory: Path, threads: int) -> dict:
    """What package_allinone does, step by step, timed."""
    from trafficfm.submission.allinone import AllInOneSubmission, build_cls, build_dec, build_seg
    from trafficfm.submission.package import zip_bytes_into
    from trafficfm.submission.reference import AllInOneReference
    from trafficfm.submission.validate import Report, parse_payload, validate_allinone

    base_rss = peak_rss_mb()
    steps, t = {}, time.perf_counter()
    ref = AllInOneReference.from_dataset(directory / "data", "test")
    cls = build_cls(directory / "pred/cls_test.csv", ref)
    dec, _ = build_dec(directory / "pred/det_test.json", ref, 100)
    steps["read cls+dec"] = time.perf_counter() - t
    t = time.perf_counter()
    seg, problems = build_seg(directory / "pred/seg_test", ref, "pad", threads)
    steps["seg polygons"] = time.perf_counter() - t
    assert not problems, problems[:3]
    t = time.perf_counter()
    payload = AllInOneSubmission(cls, dec, seg).to_json()
    steps["serialise"] = time.perf_counter() - t
    del seg
    t = time.perf_counter()
    report = Report("allinone", "test")
    validate_allinone(parse_payload(payload, report), ref, "list", report=report)
    steps["validate"] = time.perf_counter() - t
    assert report.valid, report.to_text()
    t = time.perf_counter()
    zip_path = directory / "allinone.zip"
    zip_bytes_into(zip_path, "pred_results.json", payload)
    steps["zip"] = time.perf_counter() - t
    return {"steps": steps, "total_s": sum(steps.values()), "peak_rss_mb": peak_rss_mb(),
            "rss_after_imports_mb": base_rss, "json_mb": len(payload) / 1e6,
            "zip_mb": zip_path.stat().st_size / 1e6, "polygons": report.summary["seg_polygons"],
            "points": report.summary["seg_points"], "images": report.summary["seg"]}


def measure_retrieval(directory: Path) -> dict:
    from trafficfm.submission.package import package_retrieval

    base_rss = peak_rss_mb()
    t = time.perf_counter()
    from trafficfm.config import load

    report = package_retrieval(directory / "test_rankings.csv", directory, "test", directory / "retrieval.zip",
                               directory / "retrieval.validation.json", load())
    total = time.perf_counter() - t
    return {"total_s": total, "peak_rss_mb": peak_rss_mb(), "rss_after_imports_mb": base_rss,
            "json_mb": report.summary["json_bytes"] / 1e6, "queries": report.summary["results"]}


def _child(argv: list[str]) -> None:
    part, directory = argv[0], Path(argv[1])
    if part == "make":
        make_allinone(directory / "allinone", int(argv[2]))
        make_retrieval(directory / "retrieval", int(argv[3]))
        print("{}")
    elif part == "allinone":
        print(json.dumps(measure_allinone(directory, int(argv[2]))))
    else:
        print(json.dumps(measure_retrieval(directory)))


def _run_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1000, help="segmentation maps (default 1000)")
    parser.add_argument("--queries", type=int, default=10000, help="retrieval queries (default 10000)")
    parser.add_argument("--threads", type=int, default=1, help="threads for the polygon extraction (default 1)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        _run_child("make", str(tmp), str(args.images), str(args.queries))
        print(f"(synthetic inputs written in {time.perf_counter() - t:.1f} s)")
        a = _run_child("allinone", str(tmp / "allinone"), str(args.threads))
        steps = ", ".join(f"{k} {v:.1f} s" for k, v in a["steps"].items())
        print(f"allinone: {a['images']} seg maps {WIDTH}x{HEIGHT} -> {a['polygons']:,} polygons, "
              f"{a['points']:,} points; + 8,041 cls, 153,350 boxes")
        print(f"  {a['total_s']:.1f} s ({steps}); {a['images'] / a['steps']['seg polygons']:.0f} maps/s "
              f"with {args.threads} thread(s)")
        print(f"  peak RSS {a['peak_rss_mb']:.0f} MB (after imports {a['rss_after_imports_mb']:.0f} MB); "
              f"JSON {a['json_mb']:.1f} MB, zip {a['zip_mb']:.1f} MB")
        r = _run_child("retrieval", str(tmp / "retrieval"))
        print(f"retrieval: {r['queries']:,} queries -> JSON {r['json_mb']:.1f} MB: {r['total_s']:.2f} s, "
              f"peak RSS {r['peak_rss_mb']:.0f} MB (after imports {r['rss_after_imports_mb']:.0f} MB)")


if __name__ == "__main__":
    main()
