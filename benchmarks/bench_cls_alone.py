"""Classification alone, the way the joint recipe trains it: a quick screen for classifier changes.

The AllInOne model, optimizer (AdamW with the backbone at ``lr x backbone_lr_scale``), warm-up and
cosine schedule, label-prior start and the very data stream of the joint training
(``StepBatchSampler``, ``ClsDataset``), but classification batches only: on 2 CPU cores about 4 min
a run on one thread, against about 24 min for a joint run. Prints top-1 on the whole validation
split (``classify``, the prediction code) every 100 steps, and at the end the most frequent
confusions (true, predicted, images) and per-class top-1 on the training and validation splits;
``--set`` tries a change. Screen here, then confirm jointly with bench_seeds.py. The release is one
that bench_seeds.py converted.

    python benchmarks/bench_cls_alone.py results/bench_seeds/data0 --seeds 0 1 \\
        --set allinone.train.backbone_lr_scale=0.1
"""

from __future__ import annotations

import argparse
import collections
import json
import time

import numpy as np

import seedgrid

# Classification alone is scored with one plain pass (no mirror, one side), as it was measured.
ONE_PASS = {"batch_size": 32, "cls_flip": False, "cls_scales": [1.0]}


def run(data_dir: str, seed: int, cfg, steps: int) -> tuple[list[tuple[int, float, float]], list, dict]:
    """(step, mean training loss of the last 20 steps, validation top-1) every 100 steps; the
    validation confusions of the last step: [(true class, predicted class, images), ...], most first;
    and per-class top-1 on the training and validation splits: {class: {"train": .., "val": ..}}."""
    import torch
    from torch.utils.data import DataLoader

    from trafficfm.allinone.datasets import COLLATE, ClsDataset, StepBatchSampler
    from trafficfm.allinone.inference import classify
    from trafficfm.allinone.model import AllInOneModel
    from trafficfm.allinone.train import optimizer_groups
    from trafficfm.data.canonical import Dataset
    from trafficfm.engine.optim import adamw, lr_factor, set_lr
    from trafficfm.seeding import seed_everything

    data = Dataset.open(data_dir)
    m = data.manifest
    num = {"cls": len(m["cls_classes"]), "det": len(m["det_categories"]), "seg": len(m["seg_classes"])}
    t = cfg["train"]
    seed_everything(seed)
    model = AllInOneModel(cfg["model"], num).to(memory_format=torch.channels_last)
    optimizer = adamw(optimizer_groups(model, t), t)
    task = t["tasks"]["cls"]
    ds = ClsDataset(data, "train", task["size"], True, task["aug"])
    if t["class_prior"]:
        model.cls_head.set_prior(np.bincount(ds.labels, minlength=num["cls"]))
    sampler = StepBatchSampler(len(ds), int(task["batch_size"]), seed, "cls", 0, steps, 0, 1)
    val = data.table("cls_val")
    curve, losses = [], []
    model.train()
    for step, (x, y) in enumerate(DataLoader(ds, batch_sampler=sampler, collate_fn=COLLATE["cls"])):
        set_lr(optimizer, lr_factor(step, steps, int(t["warmup_steps"]), float(t["min_lr_ratio"])))
        loss = model("cls", x, y)["cls"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if (step + 1) % 100 == 0 or step + 1 == steps:
            model.eval()
            pred = classify(model, list(val["path"]), task["size"], "cpu", ONE_PASS, "fp32")
            model.train()
            curve.append((step + 1, round(float(np.mean(losses[-20:])), 3),
                          round(float((pred == val["label"].to_numpy()).mean()), 3)))
            print(curve[-1], flush=True)
    names = m["cls_classes"]
    val_y = val["label"].to_numpy()
    wrong = pred != val_y
    pairs = collections.Counter(zip(val_y[wrong].tolist(), pred[wrong].tolist()))
    # Per-class top-1 on the training images too (whole images, as evaluated): a class the model
    # cannot fit even there is not an overfitting problem.
    train = data.table("cls_train")
    train_pred = classify(model, list(train["path"]), task["size"], "cpu", ONE_PASS, "fp32")
    per_class = {}
    for split, y, p in (("train", train["label"].to_numpy(), train_pred), ("val", val_y, pred)):
        for c in np.unique(y):
            per_class.setdefault(names[c], {})[split] = round(float((p[y == c] == c).mean()), 2)
    return curve, [(names[a], names[b], n) for (a, b), n in pairs.most_common()], per_class


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", help="a converted release (bench_seeds.py's work folder: data<seed>)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=300, help="the joint recipe's length on the hard profile")
    parser.add_argument("--set", nargs="*", default=[], help="overrides, e.g. allinone.train.backbone_lr_scale=0.1")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    seedgrid.setup(args)
    from trafficfm.config import load

    cfg = load(overrides=list(args.set)).allinone
    rows = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        curve, confusions, per_class = run(args.data_dir, seed, cfg, args.steps)
        rows.append({"seed": seed, "top1": curve[-1][2], "curve": curve, "s": round(time.perf_counter() - t0),
                     "confusions": confusions[:10], "per_class_top1": per_class})
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n{' '.join(args.set) or 'config as is'}: top-1 " + ", ".join(f"seed {r['seed']} {r['top1']:.3f}" for r in rows))


if __name__ == "__main__":
    main()
