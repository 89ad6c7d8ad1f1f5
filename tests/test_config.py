"""Config validation names the key, and the release plan follows data.source."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from trafficfm.config import ConfigError, load_config, validate_config
from trafficfm.data.source import plan_release

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def config():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_default_config_is_valid(config):
    validate_config(config)


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("data", "on_error"), "maybe", "data.on_error: 'maybe' is not one of ['fail', 'skip']"),
        (("data", "source"), "ftp", "data.source: 'ftp' is not one of"),
        (("data", "archives", "track1_test_data", "sha256"), "abc", "data.archives.track1_test_data.sha256"),
        (("data", "archives", "track2_val", "url"), "ftp://x/y.tar", "data.archives.track2_val.url"),
        (("data", "download", "retries"), 0, "data.download.retries: 0 is less than the minimum of 1"),
    ],
)
def test_errors_name_the_key(config, path, value, message):
    target = config
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    assert message in str(error.value)


def test_unknown_key_is_rejected(config):
    config["data"]["layout"]["allinone"]["cls_lst"] = "x"
    with pytest.raises(ConfigError, match=r"data\.layout\.allinone: Additional properties.*'cls_lst'"):
        validate_config(config)


def test_overlay_merges_like_snakemake(tmp_path):
    overlay = tmp_path / "real.yaml"
    overlay.write_text("data:\n  source: local\n  local_dir: /data/vimer\n")
    merged = load_config(ROOT / "config.yaml", overlay)
    assert merged["data"]["source"] == "local"
    assert merged["data"]["archives"]["track1_train_data"]["file"] == "track1_train_data.tar"


def test_plan_demo_uses_file_urls(config, tmp_path):
    plan = plan_release(config["data"], tmp_path)
    archive = plan.archives["track1_train_data"]
    assert archive.url == (tmp_path / "resources/demo/track1_train_data.tar").as_uri()
    assert plan.roots == {"allinone": str(tmp_path / "resources/release"),
                          "retrieval": str(tmp_path / "resources/release")}
    assert [a.key for a in plan.track_archives("retrieval")] == ["track2_train", "track2_val", "track2_test"]


def test_plan_urls_requires_every_url(config):
    data = copy.deepcopy(config["data"])
    data["source"] = "urls"
    with pytest.raises(ValueError, match="data.archives.track1_train_data.url is not set"):
        plan_release(data)


def test_plan_local_archives_and_trees(config, tmp_path):
    data = copy.deepcopy(config["data"])
    data.update(source="local", local_dir=str(tmp_path))
    for entry in data["archives"].values():
        (tmp_path / entry["file"]).write_bytes(b"x")
    plan = plan_release(data, tmp_path)
    assert plan.archives["track2_test"].url == (tmp_path / "track2_test.tar").as_uri()
    for entry in data["archives"].values():
        (tmp_path / entry["file"]).unlink()
    release = tmp_path / "vimer"
    for top in ("track1_train_data", "track1_test_data", "train", "val", "test"):
        (release / top).mkdir(parents=True)
    plan = plan_release(data, tmp_path)
    assert plan.archives == {} and plan.roots == {"allinone": str(release), "retrieval": str(release)}


@pytest.mark.parametrize("overlay", ["real-urls.yaml", "real-local.yaml"])
def test_shipped_overlays_are_valid(overlay):
    merged = load_config(ROOT / "config.yaml", ROOT / "config" / overlay)
    assert merged["data"]["cls_num_classes"] == 196
    if overlay == "real-urls.yaml":
        plan = plan_release(merged["data"])
        assert plan.archives["track2_val"].file == "val.tar"
        assert plan.archives["track2_val"].url.startswith("https://")
