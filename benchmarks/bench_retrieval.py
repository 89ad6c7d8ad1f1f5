"""Retrieval benchmark: encoding throughput, training pairs/s, peak memory, exact top-10 ranking.

    python benchmarks/bench_retrieval.py                      # CPU, the config's model, synthetic pairs
    python benchmarks/bench_retrieval.py --device cuda        # the same on a GPU (bf16 autocast)
    python benchmarks/bench_retrieval.py --data results/data/retrieval --steps 10

Prints one line per figure:
* image encoding (eval, no grad) and text encoding throughput of the configured model;
* training pairs/s at ``--image-size`` (default 224) with the configured freezing: real
  optimizer steps through ``trafficfm.retrieval.train.finetune`` on the first ``--steps``
  batches of ``--data`` (default: the demo's canonical dataset, else a synthetic one), three
  epochs: the first runs the whole image tower (its median step is the headline figure), later
  ones may reuse cached frozen-prefix outputs;
* peak memory (process RSS on CPU, max allocated on CUDA);
* ranking time for ``--queries`` x ``--gallery`` random ``--dim``-d embeddings (defaults: the
  real test size, 10,000 x 17,611, 512-d): the exact chunked top-10 next to a full argsort
  baseline in the same run, their agreement, and the matrix product alone.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
import torch.nn.functional as F
from trafficfm.config import load

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "results" / "data" / "retrieval"  # used when it exists and --data is not given


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeat=3):
    times = []
    result = None
    for _ in range(repeat):
        sync(device)
        start = time.perf_counter()
        result = fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return min(times), result


def bench_encoding(model, device, batch: int, captions: list[str], amp) -> None:
    model.eval()
    images = torch.randn(batch, 3, model.image_size, model.image_size, device=device)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        model.encode_image(images)  # warm-up
        seconds, _ = timed(lambda: model.encode_image(images), device)
        print(f"image encoding: {batch / seconds:8.1f} images/s  (batch {batch}, {model.image_size} px)")
        distinct = list(dict.fromkeys(captions))[:batch]
        model.clear_text_cache()
        seconds, _ = timed(lambda: (model.clear_text_cache(), model.encode_text(distinct)), device)
        tokens = model.tokenizer(distinct).shape[1]
        print(f"text encoding:  {len(distinct) / seconds:8.1f} captions/s  ({len(distinct)} distinct, {tokens} tokens)")


def bench_training(data_dir: Path, settings, steps: int, workers: int, tmp: Path) -> dict:
    """Real fine-tuning on the first ``steps`` batches of the training table, for 3 epochs: the
    first epoch runs the whole image tower (the 224 px figure); later ones may reuse the frozen
    prefix's cached output (when the config caches it)."""
    import pandas as pd
    from trafficfm.data.canonical import Dataset
    from trafficfm.retrieval.train import finetune

    batch = int(settings.train.batch_size)
    subset = tmp / "subset"
    subset.mkdir()
    source = Dataset.open(data_dir)
    (subset / "manifest.json").write_text(json.dumps(source.manifest))
    table = pd.read_csv(Path(data_dir) / "train.csv", keep_default_na=False, dtype=str)
    table.sample(n=min(len(table), batch * steps), random_state=0).to_csv(subset / "train.csv", index=False)
    settings = settings.replace({"train": {"epochs": 3, "max_steps": None, "warmup_steps": 1, "log_every": 1000}})
    summary = finetune(subset, tmp / "model.pt", settings, None, None, "train", workers=workers)
    history = summary["history"]
    first = [h for h in history if h["epoch"] == 0][1:] or history[:1]  # the first step warms up
    seconds = statistics.median(h["seconds"] for h in first)
    print(f"training:       {batch / seconds:8.1f} pairs/s  (whole image tower run, {summary['image_size']} px, "
          f"median of {len(first)} steps of {batch} pairs; {summary['trainable']})")
    print(f"                per epoch: {summary['pairs_per_second_by_epoch']} pairs/s "
          f"(frozen-prefix cache {'on' if summary['prefix_cache'] else 'off'}; captions cached: "
          f"{summary['text_cache_seconds']} s)")
    return summary


def bench_ranking(queries: int, gallery: int, dim: int, device: torch.device, chunk: int) -> None:
    from trafficfm.retrieval.rank import full_argsort_topk, topk_chunked

    generator = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(queries, dim, generator=generator), dim=-1).to(device)
    g = F.normalize(torch.randn(gallery, dim, generator=generator), dim=-1).to(device)
    matmul_s, _ = timed(lambda: q @ g.T, device, repeat=2)
    topk_s, (_, top) = timed(lambda: topk_chunked(q, g, 10, chunk), device, repeat=3)
    argsort_s, reference = timed(lambda: full_argsort_topk(q, g, 10), device, repeat=1)
    same = bool(torch.equal(top, reference))
    print(f"ranking {queries} x {gallery} ({dim}-d): exact top-10 {topk_s:.3f} s | full argsort {argsort_s:.3f} s "
          f"| matrix product alone {matmul_s:.3f} s | identical: {same}")
    if not same:
        raise SystemExit("top-10 differs from the full argsort")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--configfile", nargs="*", default=[], help="overlays on config.yaml (as snakemake's)")
    parser.add_argument("--data", help="canonical retrieval dataset; default: results/data/retrieval if it "
                                       "exists, else a synthetic one made here")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, help="training/encoding batch (default: the config's)")
    parser.add_argument("--steps", type=int, default=6, help="training batches per epoch to time (3 epochs)")
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--gallery", type=int, default=17_611)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--chunk", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--skip", nargs="*", default=[], choices=["encode", "train", "rank"])
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    overrides = [f"retrieval.model.image_size={args.image_size}", f"retrieval.device={args.device}"]
    if args.batch_size:
        overrides.append(f"retrieval.train.batch_size={args.batch_size}")
    settings = load(*args.configfile, overrides=overrides).retrieval
    model_cfg, train_cfg = settings.model, settings.train
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else os.cpu_count()} "
          f"{'GPU' if device.type == 'cuda' else 'CPUs'}), torch {torch.__version__}, threads {args.threads}, "
          f"model {model_cfg['arch']} (unlock image {model_cfg.unlock_image}, text {model_cfg.unlock_text})")

    with tempfile.TemporaryDirectory() as tmp:
        if args.data or DEMO.joinpath("manifest.json").exists():
            data_dir = Path(args.data or DEMO)
        else:
            from trafficfm.retrieval.synthetic import make_canonical

            n = int(train_cfg["batch_size"]) * args.steps + 64
            data_dir = make_canonical(Path(tmp) / "synthetic", vehicles=n // 2, pedestrians=n // 2, test_images=10,
                                      test_queries=10, splits={"train": 0.9, "val": 0.1})
        from trafficfm.data.canonical import Dataset

        captions = Dataset.open(data_dir).table("train")["caption"].tolist()
        if "encode" not in args.skip:
            from trafficfm.retrieval.model import build_model

            torch.manual_seed(0)
            model = build_model(model_cfg, device)
            bench_encoding(model, device, int(train_cfg["batch_size"]), captions, device.type == "cuda")
            del model
        if "train" not in args.skip:
            bench_training(data_dir, settings, args.steps, 1 if args.threads >= 2 else 0, Path(tmp))
    print(f"peak memory:    {peak_memory_mb(device):8.0f} MiB ({'CUDA max allocated' if device.type == 'cuda' else 'process RSS'})")
    if "rank" not in args.skip:
        bench_ranking(args.queries, args.gallery, args.dim, device, args.chunk)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
