"""The comparison of experiments (rule compare_experiments): one table row per experiment and
ensemble of both tracks, training curves overlaid and per-class results side by side.

Row: track, name, kind (experiment or ensemble), the validation metrics of its val_metrics.json
(AllInOne: top1, map50, miou, score; retrieval: map10, recall@1/5/10, and mAP@10 per kind), the
training's wall time and peak memory (its Snakemake benchmark file), steps, the experiment whose
training it uses when that is another one, what differs from the track's settings, and whether it
is the one the track packages.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import atomic  # noqa: E402
from .experiments import TrackPlan, flatten  # noqa: E402

NOT_LOSSES = {"step", "lr", "time_s", "images_per_s", "seconds", "val", "epoch", "pairs"}


def _json(path) -> dict:
    return json.loads(Path(path).read_text())


def benchmark(path: str | Path) -> dict:
    """Wall seconds and peak resident memory (MB) of a Snakemake benchmark file (NaN if absent)."""
    try:
        row = pd.read_csv(path, sep="\t").iloc[-1]
        return {"train_s": round(float(row["s"]), 1), "train_peak_mb": round(float(row["max_rss"]), 1)}
    except (OSError, KeyError, IndexError, ValueError, pd.errors.EmptyDataError):
        return {"train_s": math.nan, "train_peak_mb": math.nan}


def _steps(track: str, record: Mapping) -> float:
    if track == "allinone":
        steps = [h["step"] for h in record if "lr" in h]
        return max(steps) if steps else math.nan
    return record.get("steps", math.nan)


def rows(plan: TrackPlan, files: Mapping[str, Mapping[str, str]], selection: Mapping) -> list[dict]:
    """``files[name]``: ``metrics``, and for experiments ``training`` (history / summary) and
    ``benchmark``; retrieval also ``per_kind``."""
    out = []
    for name in plan.names:
        f = files[name]
        metrics = {k: v for k, v in _json(f["metrics"]).items() if k != "members"}
        row = {"track": plan.track, "name": name, "kind": "ensemble" if name in plan.ensembles else "experiment"}
        row.update({k: v for k, v in metrics.items() if v is not None})
        if "per_kind" in f:
            after = _json(f["per_kind"])["after"]
            row.update({f"map10_{kind}": after[kind]["map10"] for kind in ("vehicle", "pedestrian") if kind in after})
        if name in plan.ensembles:
            row["members"] = " + ".join(plan.ensembles[name])
        else:
            trained_by = plan.trained_by(name)
            row["trained_by"] = "" if trained_by == name else trained_by
            row.update(benchmark(f["benchmark"]))
            row["steps"] = _steps(plan.track, _json(f["training"]))
            row["differs_from_base"] = "; ".join(f"{k}={json.dumps(v)}" for k, v in
                                                 flatten(plan.overrides[name]).items()) or "-"
        row["selected"] = name == selection["selected"]
        out.append(row)
    return out


def write_table(all_rows: list[dict], target: str | Path) -> pd.DataFrame:
    first = ["track", "name", "kind", "selected"]
    frame = pd.DataFrame(all_rows)
    frame = frame[first + [c for c in frame.columns if c not in first]]
    if "steps" in frame:
        frame["steps"] = frame["steps"].astype("Int64")  # blank for ensembles
    atomic.write_csv(target, frame)
    return frame


def _losses(entry: Mapping) -> dict:
    return {k: v for k, v in entry.items() if k not in NOT_LOSSES and isinstance(v, (int, float))}


def plot_curves(allinone: Mapping[str, list], retrieval: Mapping[str, dict], target: str | Path) -> None:
    """AllInOne loss per task group (cls, det = sum of det_*, seg) and the retrieval loss, one line
    per trained experiment."""
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6), constrained_layout=True)
    for ax, group in zip(axes[:3], ("cls", "det", "seg")):
        for name, history in allinone.items():
            points = [(h["step"], sum(v for k, v in _losses(h).items() if k.split("_")[0] == group))
                      for h in history if "lr" in h]
            if points:
                ax.plot(*zip(*points), label=name, lw=1.2)
        ax.set_title(f"AllInOne {group} loss", fontsize=10)
        ax.set_xlabel("step")
    for name, summary in retrieval.items():
        points = [(h["step"], h["loss"]) for h in summary.get("history", []) if "loss" in h and "step" in h]
        if points:
            axes[3].plot(*zip(*points), label=name, lw=1.2)
    axes[3].set_title("retrieval contrastive loss", fontsize=10)
    axes[3].set_xlabel("step")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    atomic.save_figure(fig, target)


def plot_per_class(allinone: Mapping[str, Mapping[str, str]], retrieval: Mapping[str, str], target: str | Path) -> None:
    """Grouped bars, one bar per experiment or ensemble: AllInOne accuracy / AP@0.5 / IoU per class,
    retrieval mAP@10 per kind."""
    panels = []
    for task, column, title in (("cls", "accuracy", "classification: top-1 per class"),
                                ("det", "ap50", "detection: AP@0.5 per category with validation boxes"),
                                ("seg", "iou", "segmentation: IoU per class")):
        tables = {name: pd.read_csv(files[task]) for name, files in allinone.items()}
        if not tables:
            continue
        first = next(iter(tables.values()))
        keep = (first["gt_boxes"] > 0).to_numpy() if task == "det" else np.ones(len(first), bool)
        values = {n: pd.to_numeric(t[column], errors="coerce").fillna(0).to_numpy()[keep] for n, t in tables.items()}
        panels.append((title, list(first["name"][keep]), values))
    if retrieval:
        kinds = ["overall", "vehicle", "pedestrian"]
        values = {}
        for name, path in retrieval.items():
            after = _json(path)["after"]
            values[name] = np.asarray([after.get(k, {}).get("map10", 0.0) for k in kinds])
        panels.append(("retrieval: mAP@10 per kind", kinds, values))
    width = max(10.0, 0.3 * max((len(names) * max(1, len(v)) / 2 for _, names, v in panels), default=10))
    fig, axes = plt.subplots(len(panels), 1, figsize=(min(width, 60), 3.2 * len(panels)), constrained_layout=True,
                             squeeze=False)
    for ax, (title, names, values) in zip(axes[:, 0], panels):
        n = max(1, len(values))
        bar = 0.8 / n
        x = np.arange(len(names))
        for i, (name, v) in enumerate(values.items()):
            ax.bar(x - 0.4 + bar * (i + 0.5), v, bar, label=f"{name} (mean {v.mean() if len(v) else 0:.3f})")
        ax.set_xticks(x, [str(s) for s in names], rotation=70 if len(names) > 6 else 0, fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7, ncol=min(n, 4))
    atomic.save_figure(fig, target)


def files_of(plan: TrackPlan) -> dict[str, dict[str, str]]:
    """The files the comparison reads per name (paths relative to the working directory)."""
    out = {}
    training = {"allinone": ("training_history.json", "train_allinone"),
                "retrieval": ("train_summary.json", "finetune_retrieval")}[plan.track]
    for name in plan.names:
        folder = plan.folder(name)
        f = {"metrics": f"{folder}/val_metrics.json"}
        if plan.track == "allinone":
            f.update({task: f"{folder}/val_{task}_per_class.csv" for task in ("cls", "det", "seg")})
        else:
            f["per_kind"] = f"{folder}/val_metrics_per_kind.json"
        if name in plan.settings:
            trained = plan.folder(plan.trained_by(name))
            f["training"] = f"{trained}/{training[0]}"
            f["benchmark"] = f"benchmarks/{training[1]}/{plan.trained_by(name)}.tsv"
        out[name] = f
    return out


def compare(plans: Mapping[str, TrackPlan], selections: Mapping[str, str], table: str | Path,
            curves: str | Path, per_class: str | Path) -> pd.DataFrame:
    """Write the comparison table and its two figures; return the table."""
    all_rows, histories, per_class_files = [], {}, {}
    for track, plan in plans.items():
        files = files_of(plan)
        all_rows += rows(plan, files, _json(selections[track]))
        histories[track] = {n: _json(files[n]["training"]) for n in plan.trained}
        per_class_files[track] = {n: (files[n] if track == "allinone" else files[n]["per_kind"]) for n in plan.names}
    frame = write_table(all_rows, table)
    plot_curves(histories.get("allinone", {}), histories.get("retrieval", {}), curves)
    plot_per_class(per_class_files.get("allinone", {}), per_class_files.get("retrieval", {}), per_class)
    return frame
