"""The checkpoint store: atomic saves, the newest whole checkpoint wins, damaged files and
checkpoints of other settings are reported and set aside, never loaded."""

import logging

import pytest
import torch

from trafficfm.checkpoints import ASIDE, CheckpointStore, fingerprint

SETTINGS = {"train": {"lr": 0.01, "steps": 10}, "model": {"width": 4}}


def _state(step):
    return {"weights": torch.full((3,), float(step)), "history": [step]}


def _store(tmp_path, settings=SETTINGS, **kw):
    return CheckpointStore(tmp_path / "ckpt", settings, **kw)


def test_fingerprint_ignores_key_order_and_sees_values():
    assert fingerprint({"a": 1, "b": {"c": 2}}) == fingerprint({"b": {"c": 2}, "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_save_keeps_the_newest_and_resume_loads_the_last(tmp_path):
    store = _store(tmp_path, keep=2)
    for step in (2, 4, 6):
        store.save(step, _state(step))
    names = sorted(p.name for p in store.directory.iterdir())
    assert names == [f"ckpt_0000004_{store.fingerprint}.pt", f"ckpt_0000006_{store.fingerprint}.pt"]
    found = _store(tmp_path).resume()
    assert found.step == 6 and torch.equal(found.state["weights"], torch.full((3,), 6.0))
    assert _store(tmp_path / "nowhere").resume() is None


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "not-a-checkpoint"])
def test_damaged_newest_is_set_aside_and_the_previous_resumes(tmp_path, caplog, damage):
    store = _store(tmp_path)
    store.save(2, _state(2))
    newest = store.save(4, _state(4))
    data = newest.read_bytes()
    if damage == "truncate":
        newest.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        newest.write_bytes(data[:100] + bytes(len(data) - 100))
    elif damage == "empty":
        newest.write_bytes(b"")
    else:
        torch.save({"something": "else"}, newest)
    with caplog.at_level(logging.WARNING, logger="trafficfm.checkpoints"):
        found = _store(tmp_path).resume()
    assert found.step == 2 and found.state["history"] == [2]
    assert not newest.exists() and newest.with_name(newest.name + ".damaged").exists()
    assert any(newest.name in r.getMessage() and "damaged" in r.getMessage() for r in caplog.records)
    # the next save at that step writes a fresh file; the damaged one stays for inspection only
    assert _store(tmp_path).resume().step == 2


def test_leftover_of_an_interrupted_write_is_ignored_and_removed(tmp_path, caplog):
    store = _store(tmp_path)
    store.save(2, _state(2))
    # what atomic_path leaves when the process dies mid-write: a hidden temporary beside the target
    leftover = store.directory / f".{store.path(4).name}.abc123.tmp"
    leftover.write_bytes(store.path(2).read_bytes()[:50])
    with caplog.at_level(logging.WARNING, logger="trafficfm.checkpoints"):
        assert store.resume().step == 2
    assert not leftover.exists()
    assert any("interrupted" in r.getMessage() for r in caplog.records)


def test_checkpoints_of_other_settings_are_named_and_moved_aside(tmp_path, caplog):
    _store(tmp_path).save(4, _state(4))
    changed = {"train": {"lr": 0.001, "steps": 10}, "model": {"width": 4}}
    store = _store(tmp_path, changed)
    with caplog.at_level(logging.WARNING, logger="trafficfm.checkpoints"):
        assert store.resume() is None
    message = " ".join(r.getMessage() for r in caplog.records)
    assert "train.lr: 0.01 -> 0.001" in message and "model.width" not in message
    assert [p.name for p in (store.directory / ASIDE).iterdir()] == [f"ckpt_0000004_{fingerprint(SETTINGS)}.pt"]
    assert not list(store.directory.glob("*.pt"))


def test_a_reader_rank_neither_writes_nor_moves(tmp_path):
    writer = _store(tmp_path)
    writer.save(2, _state(2))
    newest = writer.save(4, _state(4))
    newest.write_bytes(b"broken")
    reader = _store(tmp_path, writer=False)
    assert reader.save(6, _state(6)) is None
    assert reader.resume().step == 2
    assert newest.exists()  # only the writer renames


def test_save_replaces_atomically(tmp_path, monkeypatch):
    """A failure while writing leaves the previous checkpoint and no temporary file."""
    store = _store(tmp_path)
    store.save(2, _state(2))

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        store.save(4, _state(4))
    assert [p.name for p in store.directory.iterdir()] == [store.path(2).name]
