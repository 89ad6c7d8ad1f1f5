"""trafficfm.data.extract: round trips, unsafe members, all-or-nothing, locating a release."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from trafficfm.data.extract import ExtractError, extract, find_release_tree

FILES = {"train/a.txt": b"a", "train/sub/b.bin": bytes(range(256)), "val/c.txt": b"c"}


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _make(path: Path, members: dict[str, bytes]) -> Path:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in members.items():
                zf.writestr(zipfile.ZipInfo(name), data)
    else:
        with tarfile.open(path, "w:gz" if path.name.endswith(("gz", "tgz")) else "w") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("name", ["r.tar", "r.tar.gz", "r.tgz", "r.zip"])
def test_round_trip(tmp_path, name):
    archive = _make(tmp_path / name, FILES)
    root = tmp_path / "release"
    assert extract(archive, root) == ["train", "val"]
    assert _tree(root) == FILES
    assert sorted(p.name for p in root.iterdir()) == ["train", "val"]  # no staging left


def test_replaces_same_name_and_keeps_others(tmp_path):
    root = tmp_path / "release"
    (root / "train").mkdir(parents=True)
    (root / "train" / "stale.txt").write_text("old")
    (root / "test").mkdir()
    (root / "test" / "keep.txt").write_text("keep")
    extract(_make(tmp_path / "r.tar", FILES), root)
    assert _tree(root) == {**FILES, "test/keep.txt": b"keep"}
    assert sorted(p.name for p in root.iterdir()) == ["test", "train", "val"]


@pytest.mark.parametrize("bad", ["../evil.txt", "train/../../evil.txt", "/abs/evil.txt", "C:/evil.txt"])
def test_zip_unsafe_member_rejected(tmp_path, bad):
    archive = _make(tmp_path / "r.zip", {**FILES, bad: b"x"})
    root = tmp_path / "out" / "release"
    with pytest.raises(ExtractError, match="unsafe member"):
        extract(archive, root)
    assert list(root.iterdir()) == []
    assert not list(tmp_path.rglob("evil.txt"))


def test_tar_traversal_rejected_and_nothing_left(tmp_path):
    # the bad member comes last, after good ones were written to staging
    archive = _make(tmp_path / "r.tar", {**FILES, "../evil.txt": b"x"})
    root = tmp_path / "out" / "release"
    (root / "train").mkdir(parents=True)
    (root / "train" / "old.txt").write_text("old")
    with pytest.raises(ExtractError, match="evil"):
        extract(archive, root)
    assert _tree(root) == {"train/old.txt": b"old"}  # existing entry untouched
    assert sorted(p.name for p in root.iterdir()) == ["train"]
    assert not list(tmp_path.rglob("evil.txt"))


def test_tar_link_outside_rejected(tmp_path):
    archive = tmp_path / "r.tar"
    with tarfile.open(archive, "w") as tar:
        link = tarfile.TarInfo("train/passwd")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    root = tmp_path / "release"
    with pytest.raises(ExtractError):
        extract(archive, root)
    assert list(root.iterdir()) == []


def test_corrupt_and_unknown_archives(tmp_path):
    good = _make(tmp_path / "r.tar.gz", FILES).read_bytes()
    truncated = tmp_path / "t.tar.gz"
    truncated.write_bytes(good[: len(good) // 2])
    root = tmp_path / "release"
    with pytest.raises(ExtractError, match="t.tar.gz"):
        extract(truncated, root)
    assert list(root.iterdir()) == []
    with pytest.raises(ExtractError, match="unknown archive kind"):
        extract(tmp_path / "r.rar", root)
    with pytest.raises(FileNotFoundError):
        extract(tmp_path / "missing.tar", root)


def test_find_release_tree(tmp_path):
    tops = ["track1_train_data", "train", "val"]
    for top in tops:
        (tmp_path / "user" / "VIMER release" / top).mkdir(parents=True)
    (tmp_path / "user" / "notes.txt").write_text("")
    assert find_release_tree(tmp_path / "user", tops) == tmp_path / "user" / "VIMER release"
    assert find_release_tree(tmp_path / "user" / "VIMER release", tops) == tmp_path / "user" / "VIMER release"
    with pytest.raises(FileNotFoundError) as caught:
        find_release_tree(tmp_path / "user", tops + ["test"])
    message = str(caught.value)
    assert "track1_train_data, train, val, test" in message  # what was expected
    assert "notes.txt" in message and "VIMER release/" in message  # what was found
    with pytest.raises(FileNotFoundError, match="not a folder"):
        find_release_tree(tmp_path / "nowhere", tops)
