"""What a recipe costs before a team pays for it (``python -m trafficfm.cost [--configfile ...]``).

For the models and resolutions the config names (config.yaml + overlays, through the loader the
workflow uses), with random weights (no hub):

* FLOPs per image and task, for a training step (forward + backward) and for inference (the whole
  inference path: every detection tile, the mirrored segmentation pass), counted by
  ``torch.utils.flop_counter.FlopCounterMode`` (matmuls and convolutions; a multiply-add = 2 FLOPs);
* images/s and peak memory measured here (CPU: resident memory sampled during the call; GPU: the
  allocator's peak), and on a GPU the bf16 rate and its share of the GPU's peak;
* GPU-hours of the real release: training steps x FLOPs per step, plus inference of the test
  images, divided by (GPUs x peak FLOP/s x utilisation), with the arithmetic printed;
* JPEG decoding to an RGB array (OpenCV + channel flip, as the loader did; torchvision.io.decode_jpeg,
  as it does now) and training augmentation per CPU core at the real image sizes, next to the
  images/s the GPUs would consume and the cores that takes.
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import numpy as np

# Peak dense bf16 tensor FLOP/s (fp16 for V100), from the vendors' data sheets (SXM parts).
GPU_PEAK_TFLOPS = {"A100": 312.0, "H100": 989.0, "H200": 989.0, "L40S": 362.0, "A10": 125.0, "V100": 125.0}


# ------------------------------------------------------------------------------------- measuring
class PeakMemory:
    """Peak memory of a block above what was in use when it started: the CUDA allocator's peak, or
    on CPU the process's resident set sampled every 2 ms (torch's CPU allocations are not traced)."""

    def __init__(self, device):
        self.device, self.peak, self._stop = device, 0, threading.Event()

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self):
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            self.base = self.high = self._rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.002):
            self.high = max(self.high, self._rss())

    def __exit__(self, *exc):
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.base
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.high, self._rss()) - self.base


def _conv_backward_flops(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                         _output_padding, _groups, output_mask, out_shape=None, **kwargs) -> int:
    """torch's own formula counts the weight gradient of a grouped convolution as if it were dense
    (64x too much for a 64-channel depthwise conv, and ConvNeXt is made of them). Each gradient,
    of the input and of the weight, costs what the forward convolution costs."""
    from torch.utils.flop_counter import conv_flop_count

    forward = conv_flop_count(x_shape, w_shape, grad_out_shape, transposed=transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def flop_counter():
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    return FlopCounterMode(display=False, custom_mapping={torch.ops.aten.convolution_backward: _conv_backward_flops})


def measure(fn, device, repeats: int = 1, images: int = 1) -> dict:
    """FLOPs of one call (FlopCounterMode), then seconds (median of ``repeats`` timed calls after
    the counted one, which warms up) and peak memory; FLOPs and seconds per image of the
    ``images`` the call processes."""
    import torch

    counter = flop_counter()
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # its fused attention op escapes the counter
    try:
        with PeakMemory(device) as mem, counter:
            t = time.perf_counter()
            fn()
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    times, peak = [time.perf_counter() - t], mem.peak  # replaced by the timed calls when repeats > 0
    for i in range(repeats):
        if i == 0:
            times, peak = [], 0
        with PeakMemory(device) as mem:
            t = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        peak = max(peak, mem.peak)
    return {"flops": counter.get_total_flops() / images, "seconds": float(np.median(times)) / images, "peak_bytes": peak}


# ------------------------------------------------------------------------------------- the work
def _synthetic_det_image(size: int, seed: int = 0):
    from .data.demo import detection

    img, anns = detection.make_image(np.random.default_rng(seed), [size, size], sign_px=(8, 20))
    boxes = np.array([[x, y, x + w, y + h] for _, (x, y, w, h) in anns], np.float32).reshape(-1, 4)
    return img, boxes


def _det_batch(img, boxes, task, refine: bool, rng, device):
    """One training crop around a sign and its target, as the detection data pipeline makes them."""
    import torch

    from .allinone import transforms as T
    from .allinone.refine import sample_training_boxes

    crop = int(task["crop"])
    img, boxes, labels = T.det_train(img, boxes, np.zeros(len(boxes), np.int64), crop, rng,
                                     positive_prob=1.0, scale=tuple(task["aug"]["scale"]))
    target = {"boxes": torch.from_numpy(boxes), "labels": torch.from_numpy(labels)}
    if refine:
        target["refine_boxes"], target["refine_labels"] = (
            torch.from_numpy(a) for a in sample_training_boxes(boxes, labels, crop, int(task["refine_patches"]), 45, rng))
    return torch.from_numpy(img).permute(2, 0, 1)[None].contiguous(), [{k: v.to(device) for k, v in target.items()}]


def allinone_cases(cfg, device, precision: str):
    """(task, mode, images per call, callable) for the AllInOne model of ``cfg``."""
    import torch

    from .allinone.inference import detect_image, segment_images
    from .allinone.model import AllInOneModel
    from .device import autocast

    ai = cfg["allinone"]
    n_cls = cfg["data"]["cls_num_classes"] or 196
    num_classes = {"cls": int(n_cls), "det": 45, "seg": 19}
    model = AllInOneModel({**ai["model"], "pretrained": None}, num_classes).to(device)
    model = model.to(memory_format=torch.channels_last)
    tasks, infer = ai["train"]["tasks"], ai["inference"]
    rng = np.random.default_rng(0)
    det_img, det_boxes = _synthetic_det_image(2048)
    seg_img = np.random.default_rng(1).integers(0, 255, (720, 1280, 3), dtype=np.uint8)

    def step(task, images, targets):
        model.train()
        with autocast(device, precision):
            losses = model(task, images.to(device), targets)
        sum(losses.values()).backward()
        model.zero_grad(set_to_none=True)

    def cls_train():
        s = int(tasks["cls"]["size"])
        step("cls", torch.randint(0, 255, (1, 3, s, s), dtype=torch.uint8), torch.zeros(1, dtype=torch.long, device=device))

    def det_train():
        step("det", *_det_batch(det_img, det_boxes, tasks["det"], model.refine_head is not None, rng, device))

    def seg_train():
        h, w = (int(v) for v in tasks["seg"]["crop"])
        step("seg", torch.randint(0, 255, (1, 3, h, w), dtype=torch.uint8), torch.randint(0, 19, (1, h, w), device=device))

    def cls_infer():
        s = int(tasks["cls"]["size"])
        model.eval()
        with torch.inference_mode(), autocast(device, precision):
            model("cls", torch.randint(0, 255, (1, 3, s, s), dtype=torch.uint8, device=device))

    def det_infer():
        model.eval()
        detect_image(model, det_img, device, infer, precision)

    def seg_infer():
        model.eval()
        segment_images(model, [seg_img], device, infer, precision)

    cases = [("cls", "train", cls_train), ("det", "train", det_train), ("seg", "train", seg_train),
             ("cls", "infer", cls_infer), ("det", "infer", det_infer), ("seg", "infer", seg_infer)]
    return model, [(*c, 1) for c in cases]


def retrieval_cases(cfg: dict, device, precision: str):
    import torch

    from .retrieval.model import build_model

    rcfg = {**cfg["retrieval"]["model"], "pretrained": None, "image_weights": None, "text_weights": None}
    model = build_model(rcfg, device)
    s = model.image_size
    # two pairs per call: batch norm in train mode (EfficientNet towers) needs more than one image
    text = ["a white sedan with a black roof seen from the front on a wet road at night"] * 2

    from .device import autocast

    def pair_train():
        model.train()
        with autocast(device, precision):
            loss = (model.encode_image(torch.rand(2, 3, s, s, device=device)) * model.encode_text(text)).sum()
        loss.backward()
        model.zero_grad(set_to_none=True)

    def image_infer():
        model.eval()
        with torch.inference_mode(), autocast(device, precision):
            model.encode_image(torch.rand(1, 3, s, s, device=device))

    def text_infer():
        model.eval()
        with torch.inference_mode(), autocast(device, precision):
            model.encode_text(text[:1])

    return model, [("pair", "train", pair_train, 2), ("image", "infer", image_infer, 1), ("query", "infer", text_infer, 1)]


# ------------------------------------------------------------------------------------ data loading
def loading_rates(cfg: dict, seconds: float = 2.0) -> dict:
    """Images/s on one CPU core: JPEG decode (OpenCV, torchvision) and the training augmentation, at
    the real sizes (synthetic images of the demo generator, JPEG quality 90)."""
    import cv2
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    from .allinone import transforms as T
    from .data.demo import classification

    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    tasks = cfg["allinone"]["train"]["tasks"]
    det_img, det_boxes = _synthetic_det_image(2048)
    rng = np.random.default_rng(0)
    car = classification.make_image(rng, classification.class_specs(0, 1)[0], (1000, 1000))
    frame = cv2.resize(det_img, (1280, 720))
    mask = np.random.default_rng(2).integers(0, 19, (720, 1280), dtype=np.uint8)
    labels = np.zeros(len(det_boxes), np.int64)
    augment = {
        "cls": lambda im: T.cls_train(im, int(tasks["cls"]["size"]), rng),
        "det": lambda im: T.det_train(im, det_boxes, labels, int(tasks["det"]["crop"]), rng,
                                      scale=tuple(tasks["det"]["aug"]["scale"])),
        "seg": lambda im: T.seg_train(im, mask, tuple(tasks["seg"]["crop"]), rng),
    }
    out = {}
    for task, img in (("cls", car), ("det", det_img), ("seg", frame)):
        data = cv2.imencode(".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
        raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        rates = {
            # what the loader did before (OpenCV, then a BGR -> RGB copy) and what read_rgb does now
            "opencv": _rate(lambda: np.ascontiguousarray(
                cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]), seconds),
            "torchvision": _rate(lambda: decode_jpeg(raw, mode=ImageReadMode.RGB).permute(1, 2, 0).contiguous(), seconds),
            "augment": _rate(lambda: augment[task](img), seconds),
        }
        if torch.cuda.is_available():
            decode_jpeg(raw, device="cuda")
            rates["gpu_decode"] = _rate(lambda: (decode_jpeg(raw, device="cuda"), torch.cuda.synchronize()), seconds)
        best = max(rates["opencv"], rates["torchvision"])
        rates["decode_augment"] = 1.0 / (1.0 / best + 1.0 / rates["augment"])
        out[task] = {"size": f"{img.shape[1]}x{img.shape[0]}", **rates}
    torch.set_num_threads(threads)
    cv2.setNumThreads(cv_threads)
    return out


def _rate(fn, seconds: float) -> float:
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 3:
        fn()
        n += 1
    return n / (time.perf_counter() - t0)


# ----------------------------------------------------------------------------------------- report
def _g(flops: float) -> str:
    return f"{flops / 1e9:,.1f}"


def report(cfg, device_name: str = "auto", repeats: int = 1, tracks=("allinone", "retrieval"),
           loading: bool = True, out=lambda line: print(line, flush=True)) -> dict:
    """Print the figures for the settings ``cfg`` (config.yaml + overlays, :func:`trafficfm.config.load`)
    and return them: {(task, mode): {"flops", "seconds", "peak_bytes"}, "loading", "estimate"}."""
    import torch

    from .device import amp_dtype, resolve_device

    device = resolve_device(device_name)
    precision = "auto"  # bf16 autocast on a GPU, fp32 on the CPU
    out_dtype = amp_dtype(precision, device)
    cost, ai, rt = cfg["cost"], cfg["allinone"], cfg["retrieval"]
    peak = GPU_PEAK_TFLOPS[cost["gpu"]] * 1e12
    gpus, util = int(cost["gpus"]), float(cost["utilisation"])
    rel = cost["release"]
    out(f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else f'{torch.get_num_threads()} threads'}), "
        f"{'bf16' if out_dtype else 'fp32'}; priced on {gpus} x {cost['gpu']} ({peak / 1e12:.0f} TFLOP/s peak each) at {util:.0%} utilisation")
    results = {}
    for track in tracks:
        model, cases = (allinone_cases if track == "allinone" else retrieval_cases)(cfg, device, precision)
        params = sum(p.numel() for p in model.parameters())
        out(f"\n{track}: {params / 1e6:.1f}M parameters "
            f"({ai['model']['backbone'] if track == 'allinone' else rt['model']['arch']}, random weights)")
        out(f"{'task':6} {'mode':6} {'GFLOP/image':>12} {'images/s':>9} {'peak MB':>8}" +
            ("  bf16 TFLOP/s  of peak" if device.type == "cuda" else ""))
        for task, mode, fn, images in cases:
            m = measure(fn, device, repeats, images)
            results[(task, mode)] = m
            line = f"{task:6} {mode:6} {_g(m['flops']):>12} {1 / m['seconds']:>9.3f} {m['peak_bytes'] / 2**20:>8.0f}"
            if device.type == "cuda":
                tf = m["flops"] / m["seconds"]
                dev_peak = _device_peak(torch.cuda.get_device_name())
                line += f"  {tf / 1e12:12.1f}  " + (f"{tf / dev_peak:6.1%}" if dev_peak else "   n/a")
            out(line)
        del model
    estimate = gpu_hours(cfg, results, peak, gpus, util, out) if set(tracks) == {"allinone", "retrieval"} else None
    if loading and "allinone" in tracks:
        out("\ndata loading, one CPU core (images/s)")
        rates = loading_rates(cfg)
        need = estimate["consumption"] if estimate else {}
        out(f"{'task':4} {'size':>10} {'opencv':>8} {'tv.io':>8} {'augment':>8} {'decode+aug':>10} "
            f"{'GPUs eat':>9} {'cores needed':>12}" + ("  gpu decode" if torch.cuda.is_available() else ""))
        for task, r in rates.items():
            eat = need.get(task, float("nan"))
            line = (f"{task:4} {r['size']:>10} {r['opencv']:8.1f} {r['torchvision']:8.1f} {r['augment']:8.1f} "
                    f"{r['decode_augment']:10.1f} {eat:9.0f} {eat / r['decode_augment']:12.1f}")
            if "gpu_decode" in r:
                line += f"  {r['gpu_decode']:10.1f}"
            out(line)
        results["loading"] = rates
        if estimate:
            results["loader_bound"] = loader_bound(cfg, rates, estimate, out)
    results["estimate"] = estimate
    return results


def loader_bound(cfg, rates: dict, estimate: dict, out=print) -> dict:
    """Steps/s the configured loader processes sustain (allinone.train.num_workers per task and GPU,
    at the measured per-core rates) against the steps/s the GPUs could run."""
    tasks, gpus = cfg["allinone"]["train"]["tasks"], int(cfg["cost"]["gpus"])
    workers = int(cfg["allinone"]["train"]["num_workers"])
    sustained = {t: max(workers, 1) * gpus * rates[t]["decode_augment"] / int(tasks[t]["batch_size"]) for t in tasks}
    slowest = min(sustained, key=sustained.get)
    gpu_steps = gpus / (estimate["step_flops"] / (estimate["rate"]))
    steps = int(cfg["allinone"]["train"]["steps"])
    out(f"  {max(workers, 1)} loader processes per task and GPU ({3 * max(workers, 1) * gpus} cores) sustain "
        f"{sustained[slowest]:.1f} steps/s ({slowest} is slowest) against the GPUs' {gpu_steps:.1f}: AllInOne training takes "
        f"{steps / min(sustained[slowest], gpu_steps) / 3600:.2f} h on {gpus} GPUs, "
        f"{'bound by data loading' if sustained[slowest] < gpu_steps else 'bound by the GPUs'}")
    return {"steps_per_s": sustained, "gpu_steps_per_s": gpu_steps}


def _device_peak(name: str) -> float | None:
    for kind, tf in GPU_PEAK_TFLOPS.items():
        if kind in name:
            return tf * 1e12
    return None


def gpu_hours(cfg, r: dict, peak: float, gpus: int, util: float, out=print) -> dict:
    """The arithmetic of the GPU-hour estimate, printed line by line."""
    ai, rt, rel = cfg["allinone"], cfg["retrieval"], cfg["cost"]["release"]
    tasks, steps = ai["train"]["tasks"], int(ai["train"]["steps"])
    rate = peak * util  # FLOP/s one GPU delivers
    out(f"\nGPU-hours on {gpus} x {cfg['cost']['gpu']}: FLOPs / ({peak / 1e12:.0f}e12 FLOP/s x {util} utilisation"
        f" = {rate / 1e12:.1f}e12 per GPU)")
    step_flops = sum(int(tasks[t]["batch_size"]) * r[(t, "train")]["flops"] for t in ("cls", "det", "seg"))
    terms = " + ".join(f"{tasks[t]['batch_size']} x {_g(r[(t, 'train')]['flops'])}" for t in ("cls", "det", "seg"))
    out(f"  AllInOne step = {terms} GFLOP = {_g(step_flops)} GFLOP")
    ai_train = steps * step_flops
    out(f"  AllInOne training = {steps:,} steps x {_g(step_flops)} GFLOP = {ai_train / 1e15:,.1f} PFLOP"
        f" -> {ai_train / rate / 3600:,.1f} GPU-h")
    ai_inf = sum(int(rel[f"{t}_test"]) * r[(t, "infer")]["flops"] for t in ("cls", "det", "seg"))
    out("  AllInOne test inference = " + " + ".join(
        f"{rel[f'{t}_test']:,} x {_g(r[(t, 'infer')]['flops'])}" for t in ("cls", "det", "seg"))
        + f" GFLOP = {ai_inf / 1e15:,.2f} PFLOP -> {ai_inf / rate / 3600:,.2f} GPU-h")
    pairs, epochs = int(rel["retrieval_train_pairs"]), int(rt["train"]["epochs"])
    rt_train = epochs * pairs * r[("pair", "train")]["flops"]
    out(f"  retrieval training = {epochs} epochs x {pairs:,} pairs x {_g(r[('pair', 'train')]['flops'])} GFLOP"
        f" = {rt_train / 1e15:,.1f} PFLOP -> {rt_train / rate / 3600:,.1f} GPU-h")
    rt_inf = rel["retrieval_gallery"] * r[("image", "infer")]["flops"] + rel["retrieval_queries"] * r[("query", "infer")]["flops"]
    out(f"  retrieval test encoding = {rel['retrieval_gallery']:,} x {_g(r[('image', 'infer')]['flops'])} + "
        f"{rel['retrieval_queries']:,} x {_g(r[('query', 'infer')]['flops'])} GFLOP = {rt_inf / 1e15:,.2f} PFLOP"
        f" -> {rt_inf / rate / 3600:,.2f} GPU-h")
    total = (ai_train + ai_inf + rt_train + rt_inf) / rate / 3600
    out(f"  total {total:,.1f} GPU-h = {total / gpus:,.1f} h on {gpus} GPUs")
    steps_per_s = gpus * rate / step_flops
    consumption = {t: steps_per_s * int(tasks[t]["batch_size"]) for t in ("cls", "det", "seg")}
    out(f"  the {gpus} GPUs run {steps_per_s:.2f} AllInOne steps/s, consuming " +
        ", ".join(f"{t} {v:,.0f} images/s" for t, v in consumption.items()))
    return {"gpu_hours": total, "hours": total / gpus, "step_flops": step_flops, "consumption": consumption, "rate": rate,
            "allinone_train_gpu_h": ai_train / rate / 3600, "retrieval_train_gpu_h": rt_train / rate / 3600}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--repeats", type=int, default=1,
                        help="timed calls per case after the counted one (0: time the counted call, which includes warm-up)")
    parser.add_argument("--track", choices=["allinone", "retrieval", "both"], default="both")
    parser.add_argument("--no-loading", action="store_true", help="skip the data-loading rates")


def run(settings, args) -> None:
    """The ``trafficfm cost`` subcommand (and ``python -m trafficfm.cost``)."""
    tracks = ("allinone", "retrieval") if args.track == "both" else (args.track,)
    report(settings, args.device, args.repeats, tracks, not args.no_loading)


def main(argv: list[str] | None = None) -> int:
    from . import runtime  # noqa: F401 (no hub: weights are random here)
    from .config import load

    parser = argparse.ArgumentParser(prog="python -m trafficfm.cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", nargs="*", default=[], help="overlays, as snakemake --configfile")
    add_arguments(parser)
    args = parser.parse_args(argv)
    run(load(*args.configfile), args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
