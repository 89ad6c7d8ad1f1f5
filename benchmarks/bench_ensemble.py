"""Benchmark of ensemble fusion at the real scale (trafficfm.ensemble).

* AllInOne: three members' soft validation predictions fused into one set of predictions:
  8,041 classification images (top-5 of 196 classes), 1,000 detection images (50 boxes of 45
  categories per member, the members' boxes jittered copies of shared objects, fused by WBF and by
  per-class NMS), 1,000 segmentation probability maps of 1280x720 x 19 classes (uint8, compressed;
  smooth fields upsampled from 1/8 resolution like a network's output; 8 distinct maps per member
  stored under 1,000 names);
* retrieval: three members' embeddings (512-d, float16) of 10,000 queries and 17,611 images,
  fused as normalised similarities into the top 10.

Each fusion runs in a fresh process: wall time and peak resident memory (``VmHWM``; the imports
alone take several hundred MB of it with torch: ``peak_rss_before_fusion_mb`` is that baseline). Sizes on disk of the soft predictions are printed too.

    python benchmarks/bench_ensemble.py                  # the full scale
    python benchmarks/bench_ensemble.py --seg-images 100 # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

WIDTH, HEIGHT, SEG_CLASSES, CLS_CLASSES, DET_CATEGORIES = 1280, 720, 19, 196, 45
MEMBERS = 3


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def prob_field(rng: np.random.Generator) -> np.ndarray:
    import cv2

    low = rng.normal(0, 1, (SEG_CLASSES, HEIGHT // 8, WIDTH // 8)).astype(np.float32)
    low = np.stack([cv2.GaussianBlur(c, (0, 0), 3) * 12 for c in low])
    up = np.stack([cv2.resize(c, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR) for c in low])
    up -= up.max(0, keepdims=True)
    np.exp(up, out=up)
    up /= up.sum(0, keepdims=True)
    return up


def make_allinone(root: Path, cls_images: int, det_images: int, seg_images: int, distinct: int) -> list:
    from trafficfm.ensemble import soft

    rng = np.random.default_rng(0)
    names = [f"{i:05d}.jpg" for i in range(cls_images)]
    base_logits = rng.normal(0, 3, (cls_images, CLS_CLASSES)).astype(np.float32)
    objects = []  # shared objects per detection image: box, category
    for image_id in range(1, det_images + 1):
        n = 40
        wh = rng.uniform(8, 90, (n, 2))
        xy = rng.uniform(0, 2048 - 90, (n, 2))
        objects.append((image_id, np.hstack([xy, wh]), rng.integers(0, DET_CATEGORIES, n)))
    members = []
    for m in range(MEMBERS):
        pred, sdir = root / f"m{m}" / "predictions", root / f"m{m}" / "soft"
        (sdir / "seg").mkdir(parents=True)
        pred.mkdir(parents=True)
        logits = base_logits + rng.normal(0, 1.5, base_logits.shape).astype(np.float32)
        prob = np.exp(logits - logits.max(1, keepdims=True))
        soft.write_cls(sdir / "cls.npz", names, prob / prob.sum(1, keepdims=True), 5)
        dets = []
        for image_id, boxes, cats in objects:
            jit = boxes + rng.normal(0, 1.5, boxes.shape)
            keep = rng.random(len(boxes)) < 0.9
            for (x, y, w, h), c in zip(jit[keep], cats[keep]):
                dets.append({"image_id": image_id, "category_id": int(c) + 1, "bbox": [round(x, 2), round(y, 2),
                             round(w, 2), round(h, 2)], "score": round(float(rng.uniform(0.05, 1)), 5)})
            for _ in range(50 - int(keep.sum())):  # false positives
                x, y = rng.uniform(0, 1900, 2)
                dets.append({"image_id": image_id, "category_id": int(rng.integers(1, DET_CATEGORIES + 1)),
                             "bbox": [round(x, 2), round(y, 2), 20.0, 20.0], "score": round(float(rng.uniform(0.05, 0.5)), 5)})
        (pred / "det_val.json").write_text(json.dumps(dets))
        firsts = []
        for d in range(distinct):
            path = sdir / "seg" / f"{d:05d}.npz"
            soft.write_seg(path, prob_field(rng))
            firsts.append(path)
        for i in range(distinct, seg_images):
            os.link(firsts[i % distinct], sdir / "seg" / f"{i:05d}.npz")
        members.append((str(pred), str(sdir)))
    return members


def du_mb(path: Path, distinct: int, seg_images: int) -> dict:
    seg = sorted((path / "soft" / "seg").glob("*.npz"))[:distinct]
    per_map = sum(p.stat().st_size for p in seg) / max(1, len(seg))
    return {"cls_npz_mb": round((path / "soft" / "cls.npz").stat().st_size / 2**20, 2),
            "seg_map_mb": round(per_map / 2**20, 2), "seg_all_maps_mb": round(per_map * seg_images / 2**20, 1),
            "seg_map_float32_mb": round(SEG_CLASSES * WIDTH * HEIGHT * 4 / 2**20, 1)}


def fuse_allinone(root: Path, method: str) -> dict:
    import torch  # noqa: F401 (imported before the baseline, as fuse_predictions imports it)

    from trafficfm.ensemble.allinone import fuse_predictions

    members = json.loads((root / "members.json").read_text())
    rss0 = peak_rss_mb()
    t0 = time.perf_counter()
    summary = fuse_predictions([tuple(m) for m in members], root / f"fused_{method}", "val",
                               {"det": method, "det_iou": 0.6, "det_max_per_image": 100})
    return {"seconds": round(time.perf_counter() - t0, 1), "peak_rss_mb": round(peak_rss_mb()),
            "peak_rss_before_fusion_mb": round(rss0), **summary}


def fuse_retrieval(queries: int, images: int, dim: int) -> dict:
    import torch

    from trafficfm.ensemble.retrieval import fuse_topk

    g = torch.Generator().manual_seed(0)
    base_q, base_g = torch.randn(queries, dim, generator=g), torch.randn(images, dim, generator=g)
    members = []
    for _ in range(MEMBERS):  # float16 embeddings, as the soft predictions store them
        q = torch.nn.functional.normalize(base_q + torch.randn(queries, dim, generator=g), dim=-1).half()
        im = torch.nn.functional.normalize(base_g + torch.randn(images, dim, generator=g), dim=-1).half()
        members.append((q, im))
    rss0 = peak_rss_mb()
    t0 = time.perf_counter()
    _, top = fuse_topk(members, k=10, chunk=2048)
    return {"seconds": round(time.perf_counter() - t0, 1), "peak_rss_mb": round(peak_rss_mb()),
            "peak_rss_before_fusion_mb": round(rss0), "queries": queries, "images": images, "top": list(top.shape)}


def child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--child", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cls-images", type=int, default=8041)
    parser.add_argument("--det-images", type=int, default=1000)
    parser.add_argument("--seg-images", type=int, default=1000)
    parser.add_argument("--distinct", type=int, default=8, help="distinct segmentation maps per member")
    parser.add_argument("--queries", type=int, default=10000)
    parser.add_argument("--images", type=int, default=17611)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--methods", nargs="+", default=["wbf", "nms"], help="detection fusions to run")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        result = fuse_allinone(Path(rest[0]), rest[1]) if kind == "allinone" else fuse_retrieval(
            args.queries, args.images, args.dim)
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory(prefix="bench_ensemble.") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        members = make_allinone(root, args.cls_images, args.det_images, args.seg_images, args.distinct)
        (root / "members.json").write_text(json.dumps(members))
        print(f"made {MEMBERS} AllInOne members' soft predictions in {time.perf_counter() - t0:.0f} s; sizes per member:",
              du_mb(root / "m0", args.distinct, args.seg_images))
        for method in args.methods:
            print(f"AllInOne fusion ({method}):", json.dumps(child(["allinone", str(root), method])))
    print("retrieval fusion:", json.dumps(child(["retrieval"])))


if __name__ == "__main__":
    main()
