"""Does the retrieval recipe hold on releases it has not seen? Train it on hard-profile releases.

For every data seed a release is drawn with the demo generator's ``hard`` profile at the demo's
retrieval sizes (close paint shades, captions worded by other code, more texts with fewer images,
texts unseen in training, harsher crops; see trafficfm.data.demo.retrieval) and converted by the
pipeline's converter; the model is fine-tuned with ``finetune`` (the code the rule runs) and scored
on the whole validation split with ``evaluate`` (the evaluation stage, re-ranking choice included),
then ranks the test split with ``predict`` and scores the submission built from it against the
generator's hidden test truth (the submission scorer). Prints each run's val mAP@10 (overall,
vehicles, pedestrians, without re-ranking, before fine-tuning), test mAP@10 and val - test, with the
minimum, median and spread, as a Markdown table for docs/recipe.md. Finished
runs are kept in ``--work`` and not trained again, so an interrupted grid resumes; ``--set`` tries a
recipe change (``--set retrieval.train.epochs=8``); ``--profile demo`` measures the demo release.

    python benchmarks/bench_retrieval_seeds.py --data-seeds 0 1 --tag default
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import seedgrid

COLUMNS = (("map10", "mAP@10"), ("vehicle", "vehicles"), ("pedestrian", "pedestrians"),
           ("map10_no_rerank", "no re-ranking"), ("map10_before", "before"), ("test", "test"),
           ("val_minus_test", "val - test"))


def release(work: Path, data_seed: int, settings, profile: str) -> Path:
    """The converted release of ``data_seed`` (drawn once, then reused); retrieval part only."""
    from trafficfm.data.convert_retrieval import convert_retrieval

    cfg = {**settings.data.demo.to_dict(), "seed": data_seed, "profile": profile}
    cfg.update({f"{task}_{split}": 0 for task in ("cls", "det", "seg") for split in ("train", "val", "test")})
    return seedgrid.release(work, f"_{profile}{data_seed}", cfg, settings, lambda raw, out: convert_retrieval(
        raw, out, settings.data.layout.retrieval, settings.data.on_error))


def test_score(data_dir: Path, out: Path, settings, workers: int) -> float:
    """Test mAP@10 against the hidden truth, through the pipeline's predict, build and score code."""
    from trafficfm.retrieval.predict import predict
    from trafficfm.submission.reference import RetrievalReference
    from trafficfm.submission.retrieval import build_retrieval
    from trafficfm.submission.score import score_retrieval

    predict(data_dir, out / "model.pt", out / "rerank.json", out / "test_rankings.csv", settings, workers=workers)
    ref = RetrievalReference.from_dataset(data_dir)
    obj = build_retrieval(out / "test_rankings.csv", ref).to_obj()
    return score_retrieval(obj, ref.with_truth(seedgrid.truth_dir(data_dir)))["map10"]


def run(work: Path, data_dir: Path, data_seed: int, settings, tag: str, split: str, val: str, workers: int) -> dict:
    from trafficfm.retrieval.evaluate import evaluate
    from trafficfm.retrieval.train import finetune

    out = work / tag / data_dir.name
    done = out / "metrics.json"
    if done.exists():
        row = json.loads(done.read_text())
        if "test" not in row:  # measured before the test split was scored
            row["test"] = test_score(data_dir, out, settings, workers)
            row["val_minus_test"] = row["map10"] - row["test"]
            done.write_text(json.dumps(row))
        return row
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    summary = finetune(data_dir, out / "model.pt", settings, out / "checkpoints", out / "train_summary.json", split,
                       workers=workers)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = evaluate(data_dir, out / "model.pt", out / "val_metrics.json", out / "val_metrics_per_kind.json",
                      out / "rerank.json", settings, val, workers=workers)
    per_kind = result["per_kind"]
    row = {"data": data_dir.name, "map10": result["metrics"]["map10"],
           "vehicle": per_kind["after"]["vehicle"]["map10"], "pedestrian": per_kind["after"]["pedestrian"]["map10"],
           "map10_no_rerank": per_kind["after_no_rerank"]["overall"]["map10"],
           "map10_before": result["metrics"]["map10_before"], "rerank": per_kind["rerank"]["name"],
           "steps": summary["steps"], "train_s": round(train_s), "eval_s": round(time.perf_counter() - t0)}
    row["test"] = test_score(data_dir, out, settings, workers)
    row["val_minus_test"] = row["map10"] - row["test"]
    done.write_text(json.dumps(row))
    return row


def table(rows: list[dict]) -> str:
    lines = ["| release | " + " | ".join(name for _, name in COLUMNS) + " | re-ranking | train s | eval s |",
             "|---|" + "---|" * (len(COLUMNS) + 3)]
    for r in rows:
        lines.append(f"| {r['data']} | " + " | ".join(f"{r[k]:.3f}" for k, _ in COLUMNS)
                     + f" | {r['rerank']} | {r['train_s']} | {r['eval_s']} |")
    return "\n".join(lines + seedgrid.stat_rows(rows, [k for k, _ in COLUMNS], lead=1, trail=3))


def main(argv=None) -> None:
    parser = seedgrid.parser(__doc__, "bench_retrieval_seeds", "retrieval.train.epochs=8")
    parser.add_argument("--profile", choices=("hard", "demo"), default="hard")
    parser.add_argument("--workers", type=int, default=1, help="image-loading processes (the rule: 1 on 2 cores)")
    args = parser.parse_args(argv)
    seedgrid.setup(args)
    from trafficfm import paths
    from trafficfm.config import load

    settings = load(*args.configfile, overrides=list(args.set))
    splits = paths.splits(settings.data, "retrieval")
    work = Path(args.work)
    rows = []
    for d in args.data_seeds:
        data_dir = release(work, d, settings, args.profile)
        rows.append(run(work, data_dir, d, settings.retrieval, args.tag, splits.train, splits.val, args.workers))
        print(json.dumps(rows[-1]), flush=True)
    print(f"\nrecipe {args.tag!r} ({' '.join(args.set) or 'config as is'}), {args.profile} releases:\n")
    print(table(rows))


if __name__ == "__main__":
    main()
