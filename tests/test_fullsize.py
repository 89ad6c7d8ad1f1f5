"""The full-size recipe (config/challenge.yaml): weights from local files in the timm and open_clip
formats, through the config path; detection tiles stitched back into 2048 px images; and the
whole pipeline at the real image sizes (tests/realsize.yaml) with the challenge overlay."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from workflow_runner import ROOT, run_snakemake
from trafficfm.config import load_config

CHALLENGE = ROOT / "config" / "challenge.yaml"


def _config(tmp_path: Path, overlay: dict) -> dict:
    """config.yaml + challenge.yaml + ``overlay``, read by the loader the workflow uses."""
    extra = tmp_path / "overlay.yaml"
    extra.write_text(yaml.safe_dump(overlay))
    return load_config(ROOT / "config.yaml", CHALLENGE, extra)


# ------------------------------------------------------------------------------------- weights
@pytest.mark.parametrize("fmt", ["safetensors", "pth"])
def test_allinone_loads_a_timm_checkpoint_file(tmp_path, fmt, one_thread):
    """A timm state dict of the whole classifier (as the hub distributes it) named in the overlay
    reaches the features-only backbone (whose module names differ: stem.0 -> stem_0)."""
    import timm

    from trafficfm.allinone.model import AllInOneModel

    source = timm.create_model("convnext_atto", pretrained=False, num_classes=11)
    state = source.state_dict()
    path = tmp_path / f"model.{fmt}"
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    cfg = _config(tmp_path, {"allinone": {"model": {"backbone": "timm:convnext_atto", "pretrained": str(path)}}})
    model = AllInOneModel(cfg["allinone"]["model"], {"cls": 3, "det": 5, "seg": 4})
    body = model.backbone.body
    assert torch.equal(body.stem_0.weight, state["stem.0.weight"])
    assert torch.equal(body.stages_3.blocks[1].mlp.fc2.weight, state["stages.3.blocks.1.mlp.fc2.weight"])
    fresh = AllInOneModel({**cfg["allinone"]["model"], "pretrained": None}, {"cls": 3, "det": 5, "seg": 4})
    assert not torch.equal(fresh.backbone.body.stem_0.weight, state["stem.0.weight"])


def test_challenge_backbone_builds_and_loads_convnext_tiny(tmp_path):
    """The challenge's own backbone, ConvNeXt-T, from a local file in timm's format."""
    import timm

    from trafficfm.allinone.backbones import build_backbone

    state = timm.create_model("convnext_tiny", pretrained=False).state_dict()
    torch.save(state, tmp_path / "convnext_tiny.pth")
    cfg = _config(tmp_path, {"allinone": {"model": {"pretrained": str(tmp_path / "convnext_tiny.pth")}}})["allinone"]["model"]
    assert cfg["backbone"] == "timm:convnext_tiny"
    backbone = build_backbone(cfg["backbone"], cfg["pretrained"], cfg["freeze"], cfg["return_nodes"], cfg["fuse_bn"])
    assert backbone.channels == [96, 192, 384, 768]
    assert torch.equal(backbone.body.stages_2.blocks[8].conv_dw.weight, state["stages.2.blocks.8.conv_dw.weight"])


def _tiny_vit(tmp_path: Path) -> str:
    """Register a small open_clip ViT/16 (the challenge's ViT-B-16 at a fraction of the width)."""
    import open_clip

    cfg = {"embed_dim": 64, "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}
    folder = tmp_path / "arch"
    folder.mkdir()
    (folder / "ViT-T-16-test.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(folder)
    return "ViT-T-16-test"


@pytest.mark.parametrize("fmt", ["state_dict", "training_checkpoint"])
def test_retrieval_and_allinone_load_an_open_clip_checkpoint(tmp_path, fmt, one_thread):
    """open_clip's formats: a plain state dict (open_clip_pytorch_model.bin) and a training
    checkpoint ({"epoch", "state_dict": {"module.*"}}); the retrieval model takes the whole model,
    the AllInOne backbone open_clip:<arch> the vision tower."""
    import open_clip

    from trafficfm.allinone.backbones import build_backbone
    from trafficfm.retrieval.model import build_model

    arch = _tiny_vit(tmp_path)
    state = open_clip.create_model(arch).state_dict()
    path = tmp_path / "open_clip_pytorch_model.bin"
    blob = state if fmt == "state_dict" else {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}
    torch.save(blob, path)
    cfg = _config(tmp_path, {"retrieval": {"model": {"arch": arch, "pretrained": str(path), "image_size": 64}}})
    model = build_model(cfg["retrieval"]["model"])
    got = model.clip.state_dict()
    for key in ("visual.conv1.weight", "visual.proj", "transformer.resblocks.1.mlp.c_fc.weight", "text_projection"):
        assert torch.equal(got[key], state[key]), key
    backbone = build_backbone(f"open_clip:{arch}", str(path))
    assert torch.equal(backbone.visual.transformer.resblocks[1].attn.in_proj_weight,
                       state["visual.transformer.resblocks.1.attn.in_proj_weight"])


def test_challenge_retrieval_model_is_vit_b16(tmp_path):
    """The challenge's retrieval model builds (random weights: no hub here) at its real size."""
    from trafficfm.retrieval.model import build_model

    cfg = _config(tmp_path, {"retrieval": {"model": {"pretrained": None}}})["retrieval"]["model"]
    model = build_model(cfg)
    assert cfg["arch"] == "ViT-B-16" and model.image_size == 224
    assert 140e6 < sum(p.numel() for p in model.parameters()) < 160e6
    assert all(p.requires_grad for p in model.parameters())


# -------------------------------------------------------------------------------------- tiling
class SquareFinder(torch.nn.Module):
    """A detector that finds bright squares exactly (connected components of the thresholded crop):
    what detect_image's tiling, rescaling and stitching must hand back unchanged."""

    def detect(self, images, image_sizes, **kw):
        import cv2

        out = []
        for img, (h, w) in zip(images, image_sizes):
            mask = (img[0, :h, :w] > 127).numpy().astype(np.uint8)
            n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
            boxes = [[x, y, x + bw, y + bh] for x, y, bw, bh, _ in stats[1:n]]
            out.append({"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                        "scores": torch.full((n - 1,), 0.9), "labels": torch.zeros(n - 1, dtype=torch.long)})
        return out


def test_tiles_give_each_sign_once_in_original_pixels():
    """2048 px image at det_scale 1.5 -> 3072 px in 4 x 4 tiles of 1024 (starts 0, 928, 1856, 2048).
    Signs: one cut by a tile edge (tile 0 sees 14 of its 30 scaled px: IoU 0.47 with the whole
    one, which NMS alone keeps), one inside the overlap (found whole twice), one in the far corner."""
    from trafficfm.allinone.inference import detect_image

    cfg = load_config(ROOT / "config.yaml", CHALLENGE)["allinone"]["inference"]
    assert (cfg["det_tile"], cfg["det_scale"], cfg["det_tile_overlap"]) == (1024, 1.5, 96)
    img = np.zeros((2048, 2048, 3), np.uint8)
    signs = [(674, 300, 20), (630, 1300, 16), (2028, 2030, 18)]  # x, y, side (original px)
    for x, y, s in signs:
        img[y : y + s, x : x + s] = 255
    det = detect_image(SquareFinder(), img, torch.device("cpu"), cfg, "fp32")
    assert len(det["boxes"]) == len(signs), det["boxes"]
    found = sorted(det["boxes"].tolist())
    for (x, y, s), box in zip(sorted(signs), found):
        assert np.allclose(box, [x, y, x + s, y + s], atol=1.0), (box, (x, y, s))


# ---------------------------------------------------------------------------------- whole run
REALSIZE = (CHALLENGE, ROOT / "tests" / "realsize.yaml", ROOT / "tests" / "realsize-models.yaml")


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("realsize")
    run_snakemake(workdir, configs=REALSIZE)
    return workdir


@pytest.mark.slow
def test_real_resolution_run_packages_valid_zips(real_run):

    for name in ("allinone", "retrieval"):
        report = json.loads((real_run / f"results/submissions/{name}.validation.json").read_text())
        assert report["valid"], report
    with zipfile.ZipFile(real_run / "results/submissions/allinone.zip") as z:
        sub = json.loads(z.read("pred_results.json"))
    dec = sub["dec"]
    assert dec, "the untrained model kept no box (det_score_thresh 0 keeps every candidate)"
    # boxes in the 2048 px images, from more than the first tile
    for d in dec:
        x, y, w, h = d["bbox"]
        assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= 2048 and y + h <= 2048, d
    assert max(d["bbox"][0] + d["bbox"][2] for d in dec) > 1100
    assert max(d["bbox"][1] + d["bbox"][3] for d in dec) > 1100
    # polygons in the pixels of each frame (1280 x 720; the demo scales one frame in five by 0.9-1.1)
    sizes = _seg_sizes(real_run, "test")
    assert (1280, 720) in sizes.values()
    for entry in sub["seg"]:
        (name, classes), = entry.items()
        w, h = sizes[Path(name).stem]
        points = np.concatenate([np.reshape(poly, (-1, 2)) for polys in classes.values() for poly in polys])
        assert points.min() >= 0 and points[:, 0].max() < w and points[:, 1].max() < h, name
        assert points[:, 0].max() > w / 2 and points[:, 1].max() > h / 2, name  # not squeezed into a corner


def _seg_sizes(workdir: Path, split: str) -> dict[str, tuple[int, int]]:
    """(width, height) of the release's segmentation frames of ``split``, by file stem."""
    from PIL import Image

    folder = workdir / f"resources/release/track1_{'test' if split == 'test' else 'train'}_data/seg/images/{split}"
    return {p.stem: Image.open(p).size for p in folder.glob("*.jpg")}


@pytest.mark.slow
def test_real_resolution_predictions_keep_original_sizes(real_run):
    import cv2
    from torchvision.ops import box_iou

    pred = real_run / "results/allinone/predictions"
    for split in ("val", "test"):  # label maps at the size of their frames
        sizes = _seg_sizes(real_run, split)
        maps = sorted((pred / f"seg_{split}").glob("*.png"))
        assert len(maps) == len(sizes) == 2
        for p in maps:
            w, h = sizes[p.stem]
            assert cv2.imread(str(p), cv2.IMREAD_UNCHANGED).shape == (h, w), p
    cfg = load_config(ROOT / "config.yaml", *REALSIZE)["allinone"]["inference"]
    for split in ("val", "test"):
        dets = json.loads((pred / f"det_{split}.json").read_text())
        by_image: dict = {}
        for d in dets:
            by_image.setdefault((d["image_id"], d["category_id"]), []).append(d["bbox"])
        for boxes in by_image.values():  # NMS across tiles: no two boxes of a class overlap more
            b = torch.tensor(boxes)
            b[:, 2:] += b[:, :2]
            iou = box_iou(b, b).fill_diagonal_(0)
            assert float(iou.max()) <= cfg["det_nms_thresh"] + 1e-3
