"""``trafficfm``: run one stage of the workflow by hand, with the workflow's settings and paths.

    trafficfm [--configfile F]... [--set KEY=VALUE]... [--threads N] STAGE [options]

Settings come from config.yaml, the ``--configfile`` overlays and the ``--set`` overrides
(``--set allinone.train.lr=1e-3``) through :mod:`trafficfm.config`, the loader the rules use;
inputs and outputs are the workflow's paths (:mod:`trafficfm.paths`) under the current folder, so
a stage run by hand reads what Snakemake wrote and writes what Snakemake would. Snakemake remains
the way to run the pipeline (it knows what is out of date); this command is for one stage, e.g.
under torchrun on several nodes::

    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint $HEAD:29500 \\
        --no-python trafficfm --configfile config/real-local.yaml train-allinone

``trafficfm validate ...`` is ``trafficfm-validate ...``.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import runtime  # noqa: I001 (first: it sets the environment torch reads)
from . import paths
from .config import load


def _experiment(settings, track: str, args) -> tuple:
    """(settings with ``track``'s section of experiment ``--experiment``, its folder): where the
    rules of that experiment read and write (results/<track>/experiments/<name>/)."""
    from .config import settings_of
    from .experiments import experiment_config

    if args.experiment not in settings.experiments[track]:
        raise SystemExit(f"--experiment {args.experiment}: not an experiment of {track} "
                         f"({', '.join(settings.experiments[track])})")
    merged = settings_of(experiment_config(settings.to_dict(), track, args.experiment))
    return merged, paths.experiment_dir(track, args.experiment)


def _train_allinone(settings, args) -> None:
    from .allinone.train import train

    settings, out = _experiment(settings, "allinone", args)
    train(paths.ALLINONE_DATA, f"{out}/model.pt", f"{out}/checkpoints", settings.allinone,
          curve_path=f"{out}/training_curve.png", history_path=f"{out}/training_history.json",
          stop_after=args.stop_after)


def _predict_allinone(settings, args) -> None:
    from .allinone.predict import predict

    settings, out = _experiment(settings, "allinone", args)
    split = args.split or paths.splits(settings.data, "allinone").test
    predict(f"{out}/model.pt", paths.ALLINONE_DATA, f"{out}/predictions", split, settings.allinone)


def _evaluate_allinone(settings, args) -> None:
    from .allinone.evaluate import evaluate

    _, out = _experiment(settings, "allinone", args)
    split = paths.splits(settings.data, "allinone").val
    evaluate(f"{out}/predictions", paths.ALLINONE_DATA, f"{out}/val_metrics.json", out, split)


def _finetune_retrieval(settings, args) -> None:
    from .retrieval.train import finetune

    settings, out = _experiment(settings, "retrieval", args)
    finetune(paths.RETRIEVAL_DATA, f"{out}/model.pt", settings.retrieval, f"{out}/checkpoints",
             f"{out}/train_summary.json", paths.splits(settings.data, "retrieval").train,
             workers=_workers(args), stop_after_steps=args.stop_after)


def _evaluate_retrieval(settings, args) -> None:
    from .retrieval.evaluate import evaluate

    settings, out = _experiment(settings, "retrieval", args)
    split = paths.splits(settings.data, "retrieval").val
    evaluate(paths.RETRIEVAL_DATA, f"{out}/model.pt", f"{out}/val_metrics.json", f"{out}/val_metrics_per_kind.json",
             f"{out}/rerank.json", settings.retrieval, split, workers=_workers(args),
             rankings_out=f"{out}/{split}_rankings.csv", embeddings_out=f"{out}/embeddings_{split}.npz")


def _predict_retrieval(settings, args) -> None:
    from .retrieval.predict import predict

    settings, out = _experiment(settings, "retrieval", args)
    predict(paths.RETRIEVAL_DATA, f"{out}/model.pt", f"{out}/rerank.json", f"{out}/test_rankings.csv",
            settings.retrieval, workers=_workers(args), embeddings_out=f"{out}/embeddings_test.npz")


def _package(settings, args) -> None:
    from .submission.package import package_allinone, package_retrieval

    role = paths.splits(settings.data, args.track)
    split = args.split or role.test
    target = paths.submission_zip(args.track, None if split == role.test else split)
    report = target.replace(".zip", ".validation.json")
    if args.track == "allinone":
        package_allinone(paths.ALLINONE_PREDICTIONS, paths.ALLINONE_DATA, split, target, report, settings,
                         threads=args.threads)
    else:
        package_retrieval(paths.rankings(split), paths.RETRIEVAL_DATA, split, target, report, settings)


def _cost(settings, args) -> None:
    from .cost import run

    run(settings, args)


def _workers(args) -> int:
    return 1 if args.threads >= 2 else 0  # one image-loading process beside the main one


STAGES = {
    "train-allinone": (_train_allinone, "train (or resume) an AllInOne experiment's model -> "
                                        "results/allinone/experiments/<name>/model.pt"),
    "predict-allinone": (_predict_allinone, "an AllInOne experiment's predictions of a split -> .../predictions/"),
    "evaluate-allinone": (_evaluate_allinone, "score an experiment's validation predictions -> .../val_metrics.json"),
    "finetune-retrieval": (_finetune_retrieval, "fine-tune a retrieval experiment's model -> "
                                                "results/retrieval/experiments/<name>/model.pt"),
    "evaluate-retrieval": (_evaluate_retrieval, "validation mAP@10 and the re-ranking decision of an experiment"),
    "predict-retrieval": (_predict_retrieval, "an experiment's test rankings -> .../test_rankings.csv"),
    "package": (_package, "predictions -> validated zip in results/submissions/"),
    "cost": (_cost, "FLOPs per image, images/s, peak memory, GPU-hours and data-loading rates of the recipe"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trafficfm", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", action="append", default=[], metavar="F",
                        help="a config overlay on config.yaml, as snakemake --configfile (repeat for several)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override one setting (YAML value), e.g. allinone.train.steps=50; repeatable")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads (default: all)")
    parser.add_argument("--experiment", default="base", metavar="NAME",
                        help="experiment (config section experiments) whose settings and folder the "
                             "training, prediction and evaluation stages use (default: base)")
    stages = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for name, (_, help_text) in STAGES.items():
        sub = stages.add_parser(name, help=help_text, description=help_text)
        if name in ("train-allinone", "finetune-retrieval"):
            sub.add_argument("--stop-after", type=int, help="stop after this many steps (checkpoints kept)")
        if name in ("predict-allinone", "package"):
            sub.add_argument("--split", help="split to predict / package (default: the test split)")
        if name == "package":
            sub.add_argument("track", choices=paths.TRACKS)
        if name == "cost":
            from .cost import add_arguments

            add_arguments(sub)
    stages.add_parser("validate", help="check a submission file (the trafficfm-validate command)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "validate" in argv:  # everything after it belongs to trafficfm-validate
        from .submission.cli import main as validate

        return validate(argv[argv.index("validate") + 1:])
    args = _parser().parse_args(argv)
    settings = load(*args.configfile, overrides=args.overrides)
    if args.stage in ("finetune-retrieval", "evaluate-retrieval", "predict-retrieval"):
        runtime.passive_omp_threads()  # a data-loading worker shares the cores
    runtime.start(None, args.threads)
    STAGES[args.stage][0](settings, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
