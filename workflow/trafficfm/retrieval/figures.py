"""Report figures of the retrieval stage: the fine-tuning curve, and example validation queries
with their top-ranked images framed by whether they match (the organisers' relation)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path, PurePosixPath

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from .. import atomic  # noqa: E402
from ..data.canonical import Dataset  # noqa: E402
from .relevance import is_relevant  # noqa: E402

MATCH, MISS = "#2ca02c", "#d62728"


def plot_training(summary_json: str | Path, target: str | Path) -> None:
    """Loss and logit scale per optimizer step, and training pairs/s per epoch."""
    summary = json.loads(Path(summary_json).read_text())
    history = pd.DataFrame(summary.get("history") or [])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), constrained_layout=True)
    if not history.empty:
        axes[0].plot(history["step"], history["loss"], lw=1)
        axes[0].set(title="multi-positive loss", xlabel="step")
        if "logit_scale" in history:
            axes[1].plot(history["step"], history["logit_scale"], lw=1)
        axes[1].set(title="logit scale", xlabel="step")
    rates = summary.get("pairs_per_second_by_epoch") or {}
    axes[2].bar([str(k) for k in rates], list(rates.values()))
    axes[2].set(title="training pairs/s per epoch", xlabel="epoch")
    atomic.save_figure(fig, target)
    plt.close(fig)


def draw_rankings(dataset_dir: str | Path, rankings_csv: str | Path, split: str, target: str | Path,
                  queries_per_kind: int = 3, shown: int = 5) -> None:
    """Rows of (query caption, its top ``shown`` images), framed green when the image matches the
    query and red when not; ``queries_per_kind`` distinct captions of each kind."""
    data = Dataset.open(dataset_dir)
    frame = data.table(split)
    attribute_of = {PurePosixPath(p).name: a for p, a in zip(frame["image"], frame["attribute"])}
    path_of = {PurePosixPath(p).name: p for p in frame["path"]}
    rankings = pd.read_csv(rankings_csv, keep_default_na=False)
    lines = frame.reset_index(drop=True).assign(query=lambda f: f.index)
    picks = lines.drop_duplicates("caption").groupby("kind", sort=True).head(queries_per_kind)
    fig, axes = plt.subplots(len(picks), shown + 1, figsize=(2.0 * (shown + 1.8), 2.2 * len(picks)),
                             squeeze=False, gridspec_kw={"width_ratios": [1.8] + [1] * shown})
    for row_axes, (_, query) in zip(axes, picks.iterrows()):
        for ax in row_axes:
            ax.set_xticks([])
            ax.set_yticks([])
        row_axes[0].axis("off")
        row_axes[0].text(0, 0.5, textwrap.fill(query["caption"], 34), fontsize=7, va="center")
        top = rankings[rankings["query"] == query["query"]].sort_values("rank")["name"].head(shown)
        for ax, name in zip(row_axes[1:], top):
            ax.imshow(Image.open(path_of[name]).convert("RGB"))
            colour = MATCH if is_relevant(query["attribute"], attribute_of[name]) else MISS
            for spine in ax.spines.values():
                spine.set(color=colour, linewidth=3)
    fig.suptitle(f"{split} queries and their top {shown} (green: matches, red: does not)", fontsize=9)
    fig.tight_layout()
    atomic.save_figure(fig, target)
    plt.close(fig)
