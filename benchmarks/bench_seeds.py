"""Does the AllInOne recipe hold over seeds? Train it on hard-profile releases, several seeds each.

For every data seed a release is drawn with the demo generator's ``hard`` profile (the real
datasets' difficulties at the demo's sizes, ids spread over 0..195) and converted by the pipeline's
converter; for every training seed the model is trained with ``train`` (the code the rule runs) and
scored on the whole validation split with ``validate`` (the metrics of the evaluation stage).
Prints each run's metrics, then per metric the minimum, median and spread (max - min), as a
Markdown table for docs/recipe.md. Finished runs are kept in ``--work`` and not trained again, so
an interrupted grid resumes; ``--set`` tries a recipe change (settings overrides, as the loader
takes them: ``--set allinone.train.tasks.cls.size=160``); ``--configfile`` adds overlays.
``--profile demo`` trains and scores the demo release itself (use another ``--work`` folder).

    python benchmarks/bench_seeds.py --data-seeds 0 1 --train-seeds 0 1 2
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import seedgrid

METRICS = ("top1", "map50", "miou", "score")


def release(work: Path, data_seed: int, settings) -> Path:
    """The converted hard-profile release of ``data_seed`` (drawn once, then reused)."""
    from trafficfm.data.convert_allinone import convert_allinone
    from trafficfm.data.demo import label_space

    cfg = {**settings.data.demo.to_dict(), "seed": data_seed, "retrieval_train": 0, "retrieval_val": 0,
           "retrieval_test": 0, "retrieval_test_queries": 0}  # the AllInOne track only
    return seedgrid.release(work, str(data_seed), cfg, settings, lambda raw, out: convert_allinone(
        raw, out, settings.data.layout.allinone, label_space(cfg), settings.data.on_error))


def run(work: Path, data_dir: Path, data_seed: int, train_seed: int, cfg: dict, tag: str) -> dict:
    from trafficfm.allinone.evaluate import validate
    from trafficfm.allinone.inference import load_model
    from trafficfm.allinone.train import train
    from trafficfm.data.canonical import Dataset
    from trafficfm.device import resolve_device

    out = work / tag / f"d{data_seed}_t{train_seed}"
    done = out / "metrics.json"
    if done.exists():
        return json.loads(done.read_text())
    out.mkdir(parents=True, exist_ok=True)
    run_cfg = cfg.replace({"seed": train_seed})
    t0 = time.perf_counter()
    summary = train(data_dir, out / "model.pt", out / "checkpoints", run_cfg, curve_path=out / "training_curve.png",
                    history_path=out / "training_history.json")
    seconds = time.perf_counter() - t0
    device = resolve_device(run_cfg["device"])
    model, blob = load_model(out / "model.pt", device)
    metrics, tables = validate(model, blob, Dataset.open(data_dir), "val", device, run_cfg["inference"], None,
                               run_cfg["precision"])
    cls = tables["cls"].dropna(subset=["accuracy"])
    result = {"data_seed": data_seed, "train_seed": train_seed, **{k: round(metrics[k], 4) for k in METRICS},
              "cls_classes_at_0": int((cls["accuracy"] == 0).sum()), "train_s": round(seconds),
              "kept_step": summary["kept_step"], "warnings": len(summary["warnings"])}
    done.write_text(json.dumps(result))
    return result


def summary(rows: list[dict]) -> str:
    lines = ["| data seed | train seed | top-1 | mAP@0.5 | mIoU | score | classes at 0 % | train s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['data_seed']} | {r['train_seed']} | {r['top1']:.3f} | {r['map50']:.3f} | {r['miou']:.3f} "
                     f"| {r['score']:.3f} | {r['cls_classes_at_0']} | {r['train_s']} |")
    return "\n".join(lines + seedgrid.stat_rows(rows, METRICS, lead=2, trail=2))


def main(argv=None) -> None:
    parser = seedgrid.parser(__doc__, "bench_seeds", "allinone.train.tasks.cls.size=160")
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--profile", choices=("hard", "demo"), default="hard", help="demo generator profile")
    parser.add_argument("--cls-classes", type=int, default=None,
                        help="car models per release (default: 50 with hard, the config's with demo)")
    args = parser.parse_args(argv)
    seedgrid.setup(args)
    from trafficfm.config import load

    classes = {"cls_classes": args.cls_classes or 50} if args.profile == "hard" or args.cls_classes else {}
    settings = load(*args.configfile, overrides=[{"data": {"demo": {"profile": args.profile, **classes}}}, *args.set])
    cfg = settings.allinone
    work = Path(args.work)
    rows = []
    for d in args.data_seeds:
        data_dir = release(work, d, settings)
        for t in args.train_seeds:
            r = run(work, data_dir, d, t, cfg, args.tag)
            rows.append(r)
            print(json.dumps(r), flush=True)
    print(f"\nrecipe {args.tag!r} ({' '.join(args.set) or 'config as is'}):\n")
    print(summary(rows))


if __name__ == "__main__":
    main()
