"""Experiments (trafficfm.experiments): overrides merged and validated with errors naming the
experiment and the key, shared trainings, selection; and a tiny workflow run with several
experiments and ensembles per track, compared and the best packaged."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pandas as pd
import pytest

from trafficfm.config import ConfigError, load_config
from trafficfm.experiments import plan_track
from workflow_runner import ROOT, run_snakemake

CONFIGS = (ROOT / "tests" / "tiny.yaml", ROOT / "tests" / "tiny-models.yaml", ROOT / "tests" / "tiny-experiments.yaml")


def config_with(allinone=None, ensembles=None, select="best"):
    config = load_config(ROOT / "config.yaml")
    config["experiments"]["allinone"] = allinone or {"base": {}}
    config["experiments"]["ensembles"]["allinone"] = ensembles or {}
    config["experiments"]["select"]["allinone"] = select
    return config


def test_default_is_one_base_experiment_per_track():
    config = load_config(ROOT / "config.yaml")
    for track in ("allinone", "retrieval"):
        plan = plan_track(config, track)
        assert plan.names == ["base"] and plan.trained == ["base"] and plan.select == "best"
        assert plan.settings["base"] == config[track]  # the track's section, unchanged


def test_overrides_merge_and_inference_only_variants_share_a_training():
    plan = plan_track(config_with({"base": {}, "lr": {"train": {"lr": 4.0e-3}},
                                   "tta": {"inference": {"seg_scale": 1.3}}}), "allinone")
    assert plan.settings["lr"]["train"]["lr"] == 4.0e-3
    assert plan.settings["lr"]["train"]["steps"] == plan.settings["base"]["train"]["steps"]  # merged, not replaced
    assert plan.settings["tta"]["inference"]["seg_scale"] == 1.3
    assert plan.trained == ["base", "lr"] and plan.trained_by("tta") == "base"


@pytest.mark.parametrize("override, message", [
    ({"train": {"lrr": 1.0}}, r"experiments\.allinone\.typo: unknown key allinone\.train\.lrr"),
    ({"train": {"lr": "fast"}}, r"experiments\.allinone\.typo.*\n.*allinone\.train\.lr: 'fast' is not of type 'number'"),
    ({"modle": {}}, r"experiments\.allinone\.typo: unknown key allinone\.modle"),
])
def test_a_typo_names_the_experiment_and_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        plan_track(config_with({"base": {}, "typo": override}), "allinone")


def test_ensembles_and_selection_are_checked():
    with pytest.raises(ConfigError, match=r"ensembles\.allinone\.duo: member 'nope' is not an experiment"):
        plan_track(config_with(ensembles={"duo": ["base", "nope"]}), "allinone")
    with pytest.raises(ConfigError, match=r"select\.allinone: 'other' is neither 'best' nor"):
        plan_track(config_with(select="other"), "allinone")


def test_best_named_and_ensemble_leads():
    plan = plan_track(config_with({"base": {}, "a": {"seed": 1}, "b": {"seed": 2}}, {"ab": ["a", "b"]}), "allinone")
    scores = {"base": 0.5, "a": 0.6, "b": 0.7, "ab": 0.8}
    assert plan.choose(scores) == "ab" and plan.lead("ab", scores) == "b"
    assert plan.choose({**scores, "ab": 0.1}) == "b"
    assert plan.choose({n: 0.5 for n in scores}) == "base"  # ties: the first declared
    named = plan_track(config_with({"base": {}, "a": {"seed": 1}}, select="a"), "allinone")
    assert named.choose({"base": 0.9, "a": 0.1}) == "a"


def test_jobs_and_stages_by_hand_get_their_experiments_settings():
    from argparse import Namespace

    from trafficfm.cli import _experiment
    from trafficfm.config import settings_of
    from trafficfm.experiments import job_config

    config = config_with({"base": {}, "lr": {"train": {"lr": 4.0e-3}}})
    # a rule's job (runtime.settings): by its experiment wildcard
    assert job_config(config, {"aio_exp": "lr", "aio_split": "val"})["allinone"]["train"]["lr"] == 4.0e-3
    assert job_config(config, {"aio_trained": "base"})["allinone"] == config["allinone"]
    assert job_config(config, {"aio_split": "val"}) == config
    # the trafficfm command: --experiment
    settings, out = _experiment(settings_of(config), "allinone", Namespace(experiment="lr"))
    assert settings.allinone.train.lr == 4.0e-3 and out == "results/allinone/experiments/lr"


# ------------------------------------------------------------------------------------- workflow
def _snakemake(workdir, *args, configs=CONFIGS, check=True):
    return run_snakemake(workdir, *args, configs=configs, check=check)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("experiments")
    _snakemake(workdir, "results/experiments/comparison.csv", "results/submissions/allinone.zip",
               "results/submissions/retrieval.zip")
    return workdir


def _metrics(workdir, track, name):
    return json.loads((workdir / f"results/{track}/experiments/{name}/val_metrics.json").read_text())


@pytest.mark.slow
def test_comparison_lists_every_experiment_with_its_metrics(built):
    table = pd.read_csv(built / "results/experiments/comparison.csv")
    assert list(zip(table["track"], table["name"])) == [
        ("allinone", "base"), ("allinone", "long"), ("allinone", "noflip"), ("allinone", "duo"),
        ("retrieval", "base"), ("retrieval", "slow"), ("retrieval", "duo")]
    for _, row in table.iterrows():
        for key, value in _metrics(built, row["track"], row["name"]).items():
            if value is not None and key != "members":
                assert row[key] == pytest.approx(value), (row["name"], key)
    aio = table[table["track"] == "allinone"].set_index("name")
    assert aio.loc["long", "steps"] == 6 and aio.loc["base", "steps"] == 4
    assert aio.loc["long", "differs_from_base"] == "train.steps=6" and aio.loc["base", "differs_from_base"] == "-"
    assert aio.loc["noflip", "trained_by"] == "base" and aio.loc["duo", "members"] == "base + long"
    assert aio.loc["base", "train_s"] > 0 and aio.loc["base", "train_peak_mb"] > 0
    assert table["selected"].sum() == 2
    for figure in ("training_curves.png", "per_class.png"):
        assert (built / "results/experiments" / figure).stat().st_size > 1000
    # an inference-only variant trains nothing of its own
    assert not (built / "results/allinone/experiments/noflip/model.pt").exists()


@pytest.mark.slow
def test_best_is_packaged_and_ensembles_are_scored(built):
    for track, key in (("allinone", "score"), ("retrieval", "map10")):
        names = ["base", "long", "noflip", "duo"] if track == "allinone" else ["base", "slow", "duo"]
        scores = {n: _metrics(built, track, n)[key] for n in names}
        selection = json.loads((built / f"results/{track}/selection.json").read_text())
        best = max(names, key=lambda n: (scores[n], -names.index(n)))
        assert selection["selected"] == best and selection["scores"] == pytest.approx(scores)
        published = json.loads((built / f"results/{track}/val_metrics.json").read_text())
        assert published == _metrics(built, track, best)
    chosen = json.loads((built / "results/allinone/selection.json").read_text())["selected"]
    for name in ("cls_test.csv", "det_test.json"):
        assert ((built / "results/allinone/predictions" / name).read_bytes()
                == (built / f"results/allinone/experiments/{chosen}/predictions" / name).read_bytes())
    # the ensembles' members wrote soft predictions; the ensembles were scored on validation
    assert list((built / "results/allinone/experiments/base/soft_val/seg").glob("*.npz"))
    assert not list((built / "results/allinone/experiments/noflip/soft_val").rglob("*.npz"))
    assert set(_metrics(built, "allinone", "duo")) == {"top1", "map50", "miou", "score"}
    # both zips pass the independent validator
    for track in ("allinone", "retrieval"):
        result = subprocess.run([sys.executable, "-m", "trafficfm.submission.cli", track,
                                 str(built / f"results/submissions/{track}.zip"),
                                 "--data", str(built / f"results/data/{track}"), "--no-report"],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_adding_an_experiment_trains_only_it(built, tmp_path):
    third = tmp_path / "third.yaml"
    third.write_text("experiments:\n  allinone:\n    wide: {model: {seg_channels: 48}}\n")
    out = _snakemake(built, "--dry-run", "results/experiments/comparison.csv", configs=(*CONFIGS, third)).stdout
    jobs = dict(re.findall(r"^(\w+) +(\d+)$", out, flags=re.MULTILINE))  # the dry run's job counts
    assert jobs["train_allinone"] == "1" and jobs["predict_allinone"] == "1"  # the new one only
    assert "finetune_retrieval" not in jobs and "fuse_allinone" not in jobs
    assert "evaluate_allinone" in jobs and "compare_experiments" in jobs  # and the comparison updates


def test_a_typo_stops_the_run_at_start_up(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiments:\n  retrieval:\n    typo: {train: {epochs: many}}\n")
    result = _snakemake(tmp_path, "--dry-run", configs=(*CONFIGS, bad), check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "experiments.retrieval.typo" in output and "retrieval.train.epochs: 'many'" in output
