"""Benchmark of the AllInOne model: training and inference images/s per task and peak memory, next to
a reference measured in the same run: torchvision's ``fcos_resnet50_fpn`` (weights=None,
weights_backbone=None) train step at the same resolution and batch as our detection step. Both use
channels-last memory format. Each measurement runs in its own process so that its peak memory is its
own (CPU: peak resident set size; CUDA: peak allocated memory).

    python benchmarks/bench_allinone.py                  # CPU, the model and batches of config.yaml
    python benchmarks/bench_allinone.py --device cuda    # the same on a GPU (bf16 autocast, as training)

Inputs are random images (and random boxes / label maps), so no dataset is needed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak_mb(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(fn, steps: int, warmup: int, device) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / steps


def _random_targets(n, size, num_classes, gen):
    import torch

    targets = []
    for _ in range(n):
        k = 3
        wh = torch.randint(8, 64, (k, 2), generator=gen).float()
        xy = torch.rand(k, 2, generator=gen) * (size - wh)
        targets.append({"boxes": torch.cat([xy, xy + wh], 1), "labels": torch.randint(0, num_classes, (k,), generator=gen)})
    return targets


def child_ours(cfg, device_name: str, steps: int, warmup: int, det_infer_size: int) -> dict:
    import torch

    from trafficfm.allinone.model import AllInOneModel
    from trafficfm.allinone.train import optimizer_groups
    from trafficfm.device import autocast

    device = torch.device(device_name)
    tcfg = cfg["train"]
    tasks = tcfg["tasks"]
    torch.manual_seed(0)
    model = AllInOneModel({**cfg["model"], "pretrained": None}, {"cls": 196, "det": 45, "seg": 19})
    model = model.to(device).to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(optimizer_groups(model, tcfg))  # the training's groups and rates
    gen = torch.Generator().manual_seed(0)
    bs = {t: int(tasks[t]["batch_size"]) for t in ("cls", "det", "seg")}
    cs = int(tasks["cls"]["size"])
    crop = int(tasks["det"]["crop"])
    sh, sw = (int(v) for v in tasks["seg"]["crop"])
    batches = {
        "cls": (torch.randint(0, 256, (bs["cls"], 3, cs, cs), generator=gen).float(),
                torch.randint(0, 196, (bs["cls"],), generator=gen)),
        "det": (torch.randint(0, 256, (bs["det"], 3, crop, crop), generator=gen).float(),
                _random_targets(bs["det"], crop, 45, gen)),
        "seg": (torch.randint(0, 256, (bs["seg"], 3, sh, sw), generator=gen).float(),
                torch.randint(0, 19, (bs["seg"], sh, sw), generator=gen)),
    }
    batches = {t: (x.to(device), [{k: v.to(device) for k, v in d.items()} for d in y] if isinstance(y, list)
                   else y.to(device)) for t, (x, y) in batches.items()}
    out = {"train_images_per_s": {}, "infer_images_per_s": {}, "shapes": {
        "cls": [bs["cls"], cs, cs], "det": [bs["det"], crop, crop], "seg": [bs["seg"], sh, sw]}}

    def step(task_list):
        def fn():
            opt.zero_grad(set_to_none=True)
            for t in task_list:
                with autocast(device, cfg["precision"]):
                    losses = model(t, *batches[t])
                sum(losses.values()).backward()
            opt.step()
        return fn

    for t in ("cls", "det", "seg"):
        out["train_images_per_s"][t] = round(bs[t] / _timed(step([t]), steps, warmup, device), 2)
    joint = _timed(step(["cls", "det", "seg"]), steps, warmup, device)
    out["joint_step_s"] = round(joint, 3)
    out["joint_images_per_s"] = round(sum(bs.values()) / joint, 2)
    out["peak_train_mb"] = round(_peak_mb(device))
    model.eval()
    with torch.inference_mode():
        x = batches["cls"][0]
        out["infer_images_per_s"]["cls"] = round(
            bs["cls"] / _timed(lambda: model("cls", x), steps, warmup, device), 2)
        xd = torch.randint(0, 256, (1, 3, det_infer_size, det_infer_size), generator=gen).float().to(device)
        out["infer_images_per_s"]["det"] = round(1 / _timed(
            lambda: model.detect(xd, [(det_infer_size, det_infer_size)], max_detections=50), steps, warmup, device), 2)
        out["shapes"]["det_infer"] = [1, det_infer_size, det_infer_size]
        xs = batches["seg"][0]
        out["infer_images_per_s"]["seg"] = round(
            bs["seg"] / _timed(lambda: model("seg", xs), steps, warmup, device), 2)
    out["peak_mb"] = round(_peak_mb(device))
    return out


def child_reference(cfg, device_name: str, steps: int, warmup: int) -> dict:
    import torch
    from torchvision.models.detection import fcos_resnet50_fpn

    device = torch.device(device_name)
    tcfg = cfg["train"]
    bs = int(tcfg["tasks"]["det"]["batch_size"])
    crop = int(tcfg["tasks"]["det"]["crop"])
    torch.manual_seed(0)
    # min_size = max_size = crop: the reference sees the same pixels (no resize to 800)
    model = fcos_resnet50_fpn(weights=None, weights_backbone=None, num_classes=45, min_size=crop, max_size=crop)
    model = model.to(device).to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    images = [torch.rand(3, crop, crop, generator=gen).to(device) for _ in range(bs)]
    targets = [{k: v.to(device) for k, v in t.items()} for t in _random_targets(bs, crop, 45, gen)]

    def fn():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            losses = model(images, targets)
        sum(losses.values()).backward()
        opt.step()

    dt = _timed(fn, steps, warmup, device)
    return {"train_images_per_s": {"det": round(bs / dt, 2)}, "shape": [bs, crop, crop], "peak_mb": round(_peak_mb(device))}


def run_child(kind: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--device", args.device, "--configfile", *args.configfile,
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--det-infer-size", str(args.det_infer_size)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if res.returncode != 0:
        raise SystemExit(f"{kind} benchmark failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--configfile", nargs="*", default=[], help="overlays on config.yaml (as snakemake's)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--det-infer-size", type=int, default=1024, help="square image side for detection inference")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--child", choices=["ours", "reference"], help=argparse.SUPPRESS)
    args = parser.parse_args()

    from trafficfm.config import load

    cfg = load(*args.configfile).allinone
    if args.child:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        if args.child == "ours":
            result = child_ours(cfg, args.device, args.steps, args.warmup, args.det_infer_size)
        else:
            result = child_reference(cfg, args.device, args.steps, args.warmup)
        print(json.dumps(result))
        return

    import torch

    print(f"device {args.device}; torch {torch.__version__}; threads {args.threads or torch.get_num_threads()}; "
          f"backbone {cfg['model']['backbone']}")
    ours = run_child("ours", args)
    ref = None if args.skip_reference else run_child("reference", args)
    sh = ours["shapes"]
    print("\nAllInOne model (random init, same architecture as config):")
    print(f"  {'task':5s} {'train img/s':>12s} {'infer img/s':>12s}   shapes (batch, h, w): train / inference")
    for t in ("cls", "det", "seg"):
        infer_shape = sh["det_infer"] if t == "det" else sh[t]
        print(f"  {t:5s} {ours['train_images_per_s'][t]:12.2f} {ours['infer_images_per_s'][t]:12.2f}   "
              f"{sh[t]} / {infer_shape}")
    print(f"  joint step (one batch of each task): {ours['joint_step_s']:.3f} s, {ours['joint_images_per_s']:.2f} img/s")
    unit = "GPU peak allocated" if args.device.startswith("cuda") else "peak RSS"
    print(f"  {unit}: training {ours['peak_train_mb']} MB, overall {ours['peak_mb']} MB")
    if ref:
        ratio = ours["train_images_per_s"]["det"] / ref["train_images_per_s"]["det"]
        print(f"\nReference torchvision fcos_resnet50_fpn train step at {ref['shape']} (batch, h, w):")
        print(f"  det train {ref['train_images_per_s']['det']:.2f} img/s; {unit} {ref['peak_mb']} MB")
        print(f"\nDetection training speed-up over the reference: {ratio:.1f}x (target >= 3x)")
        ours["reference"] = ref
        ours["det_speedup"] = round(ratio, 2)
    if args.json:
        Path(args.json).write_text(json.dumps(ours, indent=1))


if __name__ == "__main__":
    main()
