"""Write the demo release in the organisers' raw layout, and pack it into archives.

:func:`make_demo_release` writes every folder of the real release (see
``docs/competition-formats.md``) under one root, deterministically from ``demo_cfg["seed"]``
(each file depends only on the seed and its own split and index), plus the hidden test truth of
both tracks (:mod:`.truth`) in a separate folder that no archive holds. :func:`pack_archives`
packs the top-level folders into reproducible tar files and a ``SHA256SUMS``.

The raw text files carry the quirks of real releases, on purpose, so the converters meet them:

- ``cls/train.txt``: CRLF line endings, a tab instead of the space on about one line in five, a
  blank line in the middle and one at the end.
- ``cls/val.txt``: LF, tabs likewise, a blank line in the middle, no final newline.
- ``dec/test.txt``: CRLF, no final newline (no blank lines: the line number is the image id).
- ``dec/*.json``: image ids are the TT100K-style numeric file stems (not 1..n); only the keys
  ``images``, ``annotations`` and ``categories`` (no ``info``/``licenses``).
- retrieval label files: pedestrian names without ``.jpg``, vehicle names with it;
  ``val_label.txt`` has no final newline; ``test_text.txt`` repeats one query (20+ queries).
- Stanford-Cars-like names restart at ``00001.jpg`` in every classification split.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import shutil
import tarfile
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from . import classification, detection, draw, hard, retrieval, segmentation, signs, truth
from ...config import ConfigError
from ..classes import BDD100K_CLASSES

# demo: few easy classes with ids 0..n-1; hard: the real datasets' difficulties (see :mod:`.hard`)
PROFILES = ("demo", "hard")


def label_space(demo_cfg) -> int:
    """Classification ids the release's labels may take (``data.demo`` settings): the hard profile
    spreads its classes over Stanford Cars' 196 ids, the demo numbers them 0..n-1."""
    return hard.NUM_IDS if demo_cfg["profile"] == "hard" else int(demo_cfg["cls_classes"])


# Archive key -> the top-level release folder it holds (config `data.archives`).
ARCHIVE_KEYS = ("track1_train_data", "track1_test_data", "track2_train", "track2_val", "track2_test")
TAR_MTIME = 1672531200  # 2023-01-01T00:00:00Z, for every member


# --------------------------------------------------------------------------- config


def resolve_config(demo_cfg, layout) -> tuple[dict, dict]:
    """Plain copies of the ``data.demo`` and ``data.layout`` settings, checked for what the schema
    cannot say (sizes that fit the signs, queries drawn from a non-empty gallery)."""
    cfg = dict(demo_cfg)
    if cfg["profile"] not in PROFILES:
        raise ConfigError(f"data.demo.profile must be one of {list(PROFILES)}, got {cfg['profile']!r}")
    if cfg["profile"] == "hard" and not 2 <= int(cfg["cls_classes"]) <= hard.NUM_IDS:
        raise ConfigError(f"data.demo.cls_classes must be 2..{hard.NUM_IDS} with profile hard, got {cfg['cls_classes']!r}")
    for key, value in cfg.items():
        if key == "profile":
            continue
        if key in ("det_size", "seg_size", "cls_width", "det_sign_px"):
            if len(value) != 2 or min(int(v) for v in value) < 1:
                raise ConfigError(f"data.demo.{key} must be two positive integers, got {value!r}")
        elif int(value) < 0:
            raise ConfigError(f"data.demo.{key} must be >= 0, got {value!r}")
    for key in ("det_size", "cls_width", "det_sign_px"):
        if int(cfg[key][0]) > int(cfg[key][1]):
            raise ConfigError(f"data.demo.{key} must be [min, max] with min <= max, got {cfg[key]!r}")
    if int(cfg["det_size"][0]) < 2 * int(cfg["det_sign_px"][1]):
        raise ConfigError(f"data.demo.det_size must be at least twice the largest sign (det_sign_px), got {cfg['det_size']!r}")
    if int(cfg["cls_width"][0]) < 64:
        raise ConfigError(f"data.demo.cls_width must be at least 64 px, got {cfg['cls_width']!r}")
    if min(int(v) for v in cfg["seg_size"]) < 32:
        raise ConfigError("data.demo.seg_size must be at least 32 x 32")
    if int(cfg["cls_classes"]) < 1:
        raise ConfigError("data.demo.cls_classes must be >= 1")
    if int(cfg["retrieval_test_queries"]) > 0 and int(cfg["retrieval_test"]) < 1:
        raise ConfigError("data.demo.retrieval_test_queries needs data.demo.retrieval_test >= 1 (queries are drawn from the test gallery)")
    lay = {part: dict(layout[part]) for part in ("allinone", "retrieval")}
    for part in ("allinone", "retrieval"):
        if len(lay[part]["train_splits"]) != 2:
            raise ConfigError(f"data.layout.{part}.train_splits must name two splits (train, val)")
    return cfg, lay


def archive_folders(layout) -> dict[str, str]:
    """Archive key -> top-level folder, from the ``data.layout`` settings."""
    ai, rt = layout["allinone"], layout["retrieval"]
    top = lambda p: Path(p).parts[0]  # noqa: E731
    train, val = rt["train_splits"]
    return {
        "track1_train_data": ai["train_dir"],
        "track1_test_data": ai["test_dir"],
        "track2_train": top(rt["images"].format(split=train)),
        "track2_val": top(rt["images"].format(split=val)),
        "track2_test": top(rt["test_images"]),
    }


# --------------------------------------------------------------------------- text files


def write_lines(path: Path, lines: list[str], *, crlf: bool = False, final_newline: bool = True,
                blank_after: tuple[int, ...] = ()) -> None:
    """Write ``lines`` with the chosen quirks (blank lines after the given 0-based indices)."""
    out: list[str] = []
    for i, line in enumerate(lines):
        out.append(line)
        if i in blank_after:
            out.append("")
    nl = "\r\n" if crlf else "\n"
    text = nl.join(out) + (nl if final_newline and out else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))


def _cls_lines(rng: np.random.Generator, names: list[str], labels: list[int]) -> list[str]:
    tabs = rng.random(len(names)) < 0.2
    return [f"{n}{chr(9) if t else ' '}{lab}" for n, lab, t in zip(names, labels, tabs)]


# --------------------------------------------------------------------------- tasks

ROLES = ("train", "val", "test")


def _classification(root: Path, cfg: dict, ai: dict, truth_dir: Path) -> dict:
    seed, n_classes = int(cfg["seed"]), int(cfg["cls_classes"])
    is_hard = cfg["profile"] == "hard"
    specs = (hard if is_hard else classification).class_specs(seed, n_classes)
    ids = hard.class_ids(n_classes) if is_hard else list(range(n_classes))
    make = hard.make_cls_image if is_hard else functools.partial(classification.make_image, width=cfg["cls_width"])
    splits = dict(zip(ROLES, list(ai["train_splits"]) + [ai["test_split"]]))
    counts = {"classes": n_classes, "class_ids": ids, "class_names": [s["name"] for s in specs]}
    for role, split in splits.items():
        n = int(cfg[f"cls_{role}"])
        rng = draw.rng_for(seed, "cls-plan", role)
        labels = rng.permutation(np.resize(np.arange(n_classes), n)).tolist() if n else []
        folder = root / ai["train_dir" if role != "test" else "test_dir"] / ai["cls_images"].format(split=split)
        folder.mkdir(parents=True, exist_ok=True)
        names = [f"{i + 1:05d}.jpg" for i in range(n)]
        for i, (name, lab) in enumerate(zip(names, labels)):
            irng = draw.rng_for(seed, "cls", role, i)
            img = make(irng, specs[lab])
            draw.save_jpeg(folder / name, img, int(irng.integers(70, 96)))
        if role == "test":
            write_lines(truth_dir / truth.AIO_CLS, [f"{n} {ids[lab]}" for n, lab in zip(names, labels)])
        else:
            lines = _cls_lines(rng, names, [ids[lab] for lab in labels])
            path = root / ai["train_dir"] / ai["cls_list"].format(split=split)
            mid = (len(lines) // 3,) if len(lines) > 2 else ()
            if role == "train":
                write_lines(path, lines, crlf=True, blank_after=mid + (len(lines) - 1,))
            else:
                write_lines(path, lines, crlf=False, final_newline=False, blank_after=mid)
        counts[role] = n
    return counts


def _det_names(seed: int, total: int) -> list[str]:
    digits = max(5, len(str(total * 10)))
    lo = 10 ** (digits - 1)
    rng = draw.rng_for(seed, "det-names")
    picks = rng.choice(9 * lo, size=total, replace=False) + lo
    return [f"{int(p)}.jpg" for p in picks]


def _detection(root: Path, cfg: dict, ai: dict, truth_dir: Path) -> dict:
    seed = int(cfg["seed"])
    splits = dict(zip(ROLES, list(ai["train_splits"]) + [ai["test_split"]]))
    sizes = {role: int(cfg[f"det_{role}"]) for role in ROLES}
    all_names = _det_names(seed, sum(sizes.values()))
    counts: dict = {"categories_drawn": list(signs.DEMO_SIGNS)}
    start = 0
    for role, split in splits.items():
        n = sizes[role]
        names, start = all_names[start : start + n], start + n
        folder = root / ai["train_dir" if role != "test" else "test_dir"] / ai["det_images"].format(split=split)
        folder.mkdir(parents=True, exist_ok=True)
        images, anns, empty = [], [], 0
        for i, name in enumerate(names):
            irng = draw.rng_for(seed, "det", role, i)
            img, boxes = detection.make_image(irng, cfg["det_size"], profile=cfg["profile"], sign_px=cfg["det_sign_px"])
            draw.save_jpeg(folder / name, img, int(irng.integers(80, 96)))
            image_id = int(Path(name).stem)
            images.append({"file_name": name, "id": image_id, "width": int(img.shape[1]), "height": int(img.shape[0])})
            empty += not boxes
            for cat, box in boxes:
                anns.append(detection.coco_annotation(len(anns) + 1, image_id, cat, box))
        if role == "test":
            write_lines(root / ai["test_dir"] / ai["det_test_list"], names, crlf=True, final_newline=False)
            # the hidden truth numbers the images as the submission does: by their line in the list
            line_of = {int(Path(name).stem): k + 1 for k, name in enumerate(names)}
            coco = {"images": [dict(im, id=line_of[im["id"]]) for im in images],
                    "annotations": [dict(a, image_id=line_of[a["image_id"]]) for a in anns],
                    "categories": detection.categories()}
            (truth_dir / truth.AIO_DET).write_text(json.dumps(coco))
            counts[role] = {"images": n}
        else:
            coco = {"images": images, "annotations": anns, "categories": detection.categories()}
            path = root / ai["train_dir"] / ai["det_json"].format(split=split)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(coco))
            counts[role] = {"images": n, "annotations": len(anns), "empty_images": empty}
    return counts


def _seg_name(rng: np.random.Generator, used: set) -> str:
    while True:
        a, b = (int(x) for x in rng.integers(0, 2**32, 2, dtype=np.uint64))
        stem = f"{a:08x}-{b:08x}"
        if stem not in used:
            used.add(stem)
            return stem


def _segmentation(root: Path, cfg: dict, ai: dict, truth_dir: Path) -> dict:
    seed = int(cfg["seed"])
    splits = dict(zip(ROLES, list(ai["train_splits"]) + [ai["test_split"]]))
    optional = list(segmentation.CLASS_PROB)
    name_rng, used = draw.rng_for(seed, "seg-names"), set()
    counts: dict = {}
    for role, split in splits.items():
        n = int(cfg[f"seg_{role}"])
        base = ai["train_dir" if role != "test" else "test_dir"]
        img_dir = root / base / ai["seg_images"].format(split=split)
        img_dir.mkdir(parents=True, exist_ok=True)
        lab_dir = root / base / ai["seg_labels"].format(split=split) if role != "test" else truth_dir / truth.AIO_SEG
        lab_dir.mkdir(parents=True, exist_ok=True)
        order = draw.rng_for(seed, "seg-plan", role).permutation(len(optional))
        present: set[int] = set()
        for i in range(n):
            stem = _seg_name(name_rng, used)
            # Spread the rare classes over the split so each appears at least once.
            forced = [optional[int(order[j])] for j in range(len(optional)) if j % n == i] if role != "test" else []
            irng = draw.rng_for(seed, "seg", role, i)
            img, label = segmentation.make_image(irng, cfg["seg_size"], forced, profile=cfg["profile"])
            draw.save_jpeg(img_dir / f"{stem}.jpg", img, int(irng.integers(80, 96)))
            draw.save_png(lab_dir / f"{stem}.png", label)
            if role != "test":
                present.update(np.unique(label).tolist())
        counts[role] = n
        if role != "test":
            counts[f"{role}_classes"] = [BDD100K_CLASSES[c] for c in sorted(present) if c < len(BDD100K_CLASSES)]
    return counts


def _retrieval(root: Path, cfg: dict, rt: dict) -> tuple[dict, list[str], list[str]]:
    seed, profile = int(cfg["seed"]), cfg["profile"]
    sizes = {role: int(cfg[f"retrieval_{role}"]) for role in ROLES}
    pools = retrieval.pools_for(seed, sizes["train"], profile)
    names = retrieval.NameBook(seed, sum(sizes.values()))
    train, val = rt["train_splits"]
    counts: dict = {"vehicle_texts_pool": len(pools[0]), "pedestrian_texts_pool": len(pools[1])}
    test_items: list[retrieval.Item] = []
    for role in ROLES:
        items = retrieval.plan_split(seed, role, sizes[role], pools, names, profile)
        if role == "test":
            image_dir = rt["test_images"]
            test_items = items
        else:
            split = train if role == "train" else val
            image_dir = rt["images"].format(split=split)
            write_lines(root / rt["label_file"].format(split=split), [it.line() for it in items],
                        final_newline=(role == "train"))
        retrieval.write_split(root, seed, role, items, image_dir, profile)
        counts[role] = {
            "vehicle": sum(it.kind == "vehicle" for it in items),
            "pedestrian": sum(it.kind == "pedestrian" for it in items),
            "texts": len({it.attribute for it in items}),
        }
    queries = retrieval.make_queries(seed, test_items, int(cfg["retrieval_test_queries"]), profile)
    write_lines(root / rt["test_queries"], [q for q, _ in queries])
    counts["test"]["queries"] = len(queries)
    return counts, [it.line() for it in test_items], [f"{q}${a}" for q, a in queries]


# --------------------------------------------------------------------------- public API


def _clear(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _install(tmp: Path, final: Path, allowed: set[str]) -> None:
    """Replace ``final`` by ``tmp``; refuses to delete a non-empty folder that holds anything else."""
    if final.exists():
        if final.is_dir():
            foreign = {p.name for p in final.iterdir()} - allowed
            if foreign:
                raise FileExistsError(f"{final} exists and holds {sorted(foreign)}: not replacing it")
        _clear(final)
    os.replace(tmp, final)


def make_demo_release(out_root: Path, demo_cfg, layout, truth_dir: Path | None = None) -> dict:
    """Write a complete demo release in the organisers' layout under ``out_root``.

    ``demo_cfg``: the ``data.demo`` settings; ``layout``: the ``data.layout`` settings. The same seed gives
    byte-identical files. The hidden test truth of both tracks goes to ``truth_dir`` (default
    ``out_root/../demo_truth``), outside the release. Both appear complete or not at all
    (written under temporary names, then renamed). Returns counts per task and split (split
    keys are the roles ``train``/``val``/``test``), the truth folder and the seconds taken.
    """
    t0 = time.perf_counter()
    cfg, lay = resolve_config(demo_cfg, layout)
    out_root = Path(out_root)
    truth_dir = Path(truth_dir) if truth_dir is not None else out_root.parent / "demo_truth"
    if truth_dir.resolve().is_relative_to(out_root.resolve()):
        raise ValueError(f"truth_dir {truth_dir} must lie outside the release {out_root}")
    out_root.parent.mkdir(parents=True, exist_ok=True)
    truth_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_root.parent / f".{out_root.name}.partial"
    tmp_truth = truth_dir.parent / f".{truth_dir.name}.partial"
    for p in (tmp, tmp_truth):
        _clear(p)
    tmp.mkdir()
    tmp_truth.mkdir()
    counts: dict = {"seed": int(cfg["seed"])}
    (tmp_truth / truth.AIO_DIR).mkdir()
    counts["cls"] = _classification(tmp, cfg, lay["allinone"], tmp_truth)
    counts["det"] = _detection(tmp, cfg, lay["allinone"], tmp_truth)
    counts["seg"] = _segmentation(tmp, cfg, lay["allinone"], tmp_truth)
    counts["retrieval"], truth_lines, query_lines = _retrieval(tmp, cfg, lay["retrieval"])
    write_lines(tmp_truth / truth.RET_GALLERY, truth_lines)
    write_lines(tmp_truth / truth.RET_QUERIES, query_lines)
    (tmp_truth / truth.README).write_text(truth.TEXT)
    top = {p.name for p in tmp.iterdir()}
    _install(tmp, out_root, top)
    _install(tmp_truth, truth_dir, truth.TOP_LEVEL)
    counts["truth_dir"] = str(truth_dir)
    counts["seconds"] = round(time.perf_counter() - t0, 2)
    return counts


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _tar_folder(src: Path, arcname: str, dest: Path, compress: bool = False) -> None:
    """A reproducible tar of ``src`` as ``arcname/``: sorted members, fixed owner, mode and mtime
    (gzip-compressed, with a zero gzip timestamp, when ``dest`` ends in .gz or .tgz)."""

    def info(name: str, is_dir: bool, size: int = 0) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
        ti.mode = 0o755 if is_dir else 0o644
        ti.size = size
        ti.mtime = TAR_MTIME
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        return ti

    def members(folder: Path, name: str):
        yield folder, name, True
        for child in sorted(folder.iterdir(), key=lambda p: p.name):
            if child.is_symlink():
                raise ValueError(f"{child}: links are not packed")
            if child.is_dir():
                yield from members(child, f"{name}/{child.name}")
            else:
                yield child, f"{name}/{child.name}", False

    with open(dest, "wb") as raw:
        gz = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) if compress else None
        with tarfile.open(fileobj=gz or raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path, name, is_dir in members(src, arcname):
                if is_dir:
                    tar.addfile(info(name, True))
                else:
                    with open(path, "rb") as f:
                        tar.addfile(info(name, False, path.stat().st_size), f)
        if gz is not None:
            gz.close()


def pack_archives(release_root: Path, archive_dir: Path, archives: dict, folders: dict) -> Path:
    """Pack the release's top-level folders into the archives named in config ``data.archives``.

    ``archives``: archive key -> ``{"file": name, ...}`` (or just the name); ``folders``: archive
    key -> folder (:func:`archive_folders` of the layout: with the organisers' names
    track1_train_data -> ``track1_train_data/``, track1_test_data -> ``track1_test_data/``,
    track2_train -> ``train/``, track2_val -> ``val/``, track2_test -> ``test/``). Re-packing the same release gives identical
    bytes. Writes ``archive_dir/SHA256SUMS`` (``sha256sum`` format, sorted by file name) and
    returns its path. Every file is written under a temporary name and then renamed.
    """
    release_root, archive_dir = Path(release_root), Path(archive_dir)
    archive_dir.mkdir(parents=True, exist_ok=True)
    sums = {}
    for key, spec in archives.items():
        file = spec["file"] if isinstance(spec, Mapping) else str(spec)
        if key not in folders:
            raise KeyError(f"archive {key!r}: no folder known for it (pass folders=...)")
        src = release_root / folders[key]
        if not src.is_dir():
            raise FileNotFoundError(f"{src}: the release has no folder for archive {key!r}")
        tmp = archive_dir / f".{file}.partial"
        _tar_folder(src, folders[key], tmp, compress=file.endswith((".gz", ".tgz")))
        os.replace(tmp, archive_dir / file)
        sums[file] = _sha256(archive_dir / file)
    out = archive_dir / "SHA256SUMS"
    tmp = archive_dir / ".SHA256SUMS.partial"
    tmp.write_text("".join(f"{digest}  {name}\n" for name, digest in sorted(sums.items())))
    os.replace(tmp, out)
    return out
