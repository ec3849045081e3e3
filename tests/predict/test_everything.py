"""Segment everything: the generator's geometry, filters and post-processing, and parity.

The parity tests compare with Meta's ``SAM2AutomaticMaskGenerator`` (``sam2`` package) on the
same random sam2.1-tiny weights: PyTorch's default initialisation, with the hypernetwork
output scaled up so the logits reach the stability cut-offs (with random weights they stay
within +-0.4). Every mask must be matched at IoU >= 0.99 both ways, in the same order, with
predicted IoU and stability score within 1e-4.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sam_pets.predict import ImagePredictor
from sam_pets.predict import everything as E
from sam_pets.predict.images import read_image


@pytest.fixture(scope="module")
def photo():
    from sam_pets.samples import sample_path

    return read_image(sample_path())  # 375 x 500, a cat


@pytest.fixture(scope="module")
def pets_predictor(photo):
    from sam_pets.model import resolve_model

    p = ImagePredictor(resolve_model("pets"), device="cpu", precision="fp32")
    p.set_image(photo)
    return p


# Thresholds the built-in model's soft logits pass (Meta's defaults are set for Meta's models).
LOOSE = dict(points_per_side=8, pred_iou_thresh=0.5, stability_score_thresh=0.5)


def test_point_grid_is_cell_centres():
    g = E.point_grid(4)
    assert g.shape == (16, 2)
    np.testing.assert_allclose(g[:4, 0], [0.125, 0.375, 0.625, 0.875])
    np.testing.assert_allclose(g[:4, 1], 0.125)  # row by row
    assert g.min() > 0 and g.max() < 1


def test_crop_boxes_cover_the_image_with_overlap():
    boxes = E.crop_boxes((375, 500), 2, 512 / 1500)
    layers = [layer for _, layer in boxes]
    assert layers == [0] + [1] * 4 + [2] * 16
    assert boxes[0][0] == (0, 0, 500, 375)
    for (x0, y0, x1, y1), _ in boxes:
        assert 0 <= x0 < x1 <= 500 and 0 <= y0 < y1 <= 375
    first = [b for b, layer in boxes if layer == 1]
    assert max(b[2] for b in first) == 500 and max(b[3] for b in first) == 375
    assert first[0][2] > first[2][0]  # neighbours overlap


def test_params_are_checked():
    with pytest.raises(ValueError, match="exactly one"):
        E.EverythingParams(points_per_side=None)
    with pytest.raises(ValueError, match="points_per_batch"):
        E.EverythingParams(points_per_batch=0)
    with pytest.raises(ValueError, match="box_nms_thresh"):
        E.EverythingParams(box_nms_thresh=1.5)
    with pytest.raises(ValueError, match="unknown .*: colour"):
        E.EverythingParams.from_dict({"colour": 1})
    with pytest.raises(ValueError, match="needs 2"):
        E.EverythingParams(points_per_side=None, point_grids=[E.point_grid(2)], crop_n_layers=1)
    with pytest.raises(ValueError, match="true or false"):
        E.EverythingParams(use_m2m="False")
    with pytest.raises(ValueError, match="integer"):
        E.EverythingParams(points_per_side="abc")
    with pytest.raises(ValueError, match="pred_iou_thresh"):
        E.EverythingParams(pred_iou_thresh=1.5)
    assert E.EverythingParams.parse_value("use_m2m", "False") is False
    assert E.EverythingParams.parse_value("points_per_side", "16") == 16
    with pytest.raises(ValueError, match="a number"):
        E.EverythingParams.parse_value("box_nms_thresh", "high")
    p = E.EverythingParams(points_per_side=4, crop_n_layers=2, crop_n_points_downscale_factor=2)
    assert [len(g) for g in p.grids()] == [16, 4, 1]
    assert E.EverythingParams.from_dict(p.to_dict()) == p


@pytest.mark.parametrize("hw", [(375, 500), (40, 1000), (1000, 37)])
def test_windowed_upsampling_equals_interpolate(hw, rng):
    low = torch.from_numpy(rng.normal(-3, 1.5, (64, 64)).astype(np.float32))
    low[20:30, 5:12] += 6.0  # an object
    full = F.interpolate(low[None, None], hw, mode="bilinear", align_corners=False)[0, 0]
    window, values = E._upsample_window(low, hw, 0.0, 1.0)
    x0, y0, x1, y1 = window
    np.testing.assert_allclose(values, full[y0:y1, x0:x1].numpy(), atol=1e-5)
    outside = full.numpy().copy()
    outside[y0:y1, x0:x1] = -np.inf
    assert outside.max() <= -1.0  # nothing outside the window can pass the lower cut-off
    assert E._upsample_window(torch.full((64, 64), -5.0), hw, 0.0, 1.0) is None


@pytest.mark.parametrize("hw", [(3000, 4000), (375, 500), (1000, 37)])
def test_counts_of_a_large_window_equal_the_interpolated_ones(hw, rng):
    low = rng.normal(-2, 3, (64, 64)).astype(np.float32)
    low[10:40, 5:50] += 6
    w = E._window(low, hw, -1.0)
    window, values = E._upsample_window(torch.from_numpy(low), hw, 0.0, 1.0)
    assert E._sorted_counts(low, w, (1.0, -1.0)) == [(values > 1).sum(), (values > -1).sum()]
    mask = E._large_mask(torch.from_numpy(low), hw, window, 0.0)
    assert (mask == (values > 0)).all()


def test_remove_small_regions_holes_and_islands():
    m = np.zeros((30, 30), bool)
    m[5:25, 5:25] = True
    m[10:12, 10:12] = False  # a 4-pixel hole
    m[0:2, 28:30] = True  # a 4-pixel island
    filled, changed = E.remove_small_regions(m, 10, "holes")
    assert changed and filled[10:12, 10:12].all()
    cleaned, changed = E.remove_small_regions(filled, 10, "islands")
    assert changed and not cleaned[0:2, 28:30].any() and cleaned[5:25, 5:25].all()
    same, changed = E.remove_small_regions(cleaned, 10, "islands")
    assert not changed and (same == cleaned).all()
    only_small = np.zeros((10, 10), bool)
    only_small[1, 1] = only_small[5:7, 5:7] = True
    kept, _ = E.remove_small_regions(only_small, 100, "islands")
    assert kept[5:7, 5:7].all() and not kept[1, 1]  # the largest one stays


def test_finds_the_cat_and_masks_are_consistent(pets_predictor, photo):
    masks = E.segment_everything(pets_predictor, photo, E.EverythingParams(**LOOSE))
    assert masks
    hw = photo.shape[:2]
    for m in masks:
        x0, y0, x1, y1 = m.window
        assert m.mask.shape == (y1 - y0, x1 - x0) and 0 <= x0 <= x1 <= hw[1]
        full = m.full(hw)
        ys, xs = np.nonzero(full)
        assert (xs.min(), ys.min(), xs.max(), ys.max()) == m.box
        assert m.area == full.sum()
        assert 0.5 < m.predicted_iou and 0.5 <= m.stability_score <= 1
        from pycocotools import mask as mask_utils

        assert (mask_utils.decode(m.rle(hw)) == full).all()
        bx = m.bbox_xywh()
        assert bx[2] == xs.max() - xs.min() + 1
    scores = [m.predicted_iou for m in masks]
    assert scores == sorted(scores, reverse=True)  # one crop: NMS order
    # the cat (the sample's trimap) is found
    from PIL import Image

    from sam_pets.samples import trimap_path

    cat = np.asarray(Image.open(trimap_path())) == 1
    best = max((m.full(hw) & cat).sum() / (m.full(hw) | cat).sum() for m in masks)
    assert best > 0.7


def test_thresholds_filter(pets_predictor, photo):
    loose = E.segment_everything(pets_predictor, photo, E.EverythingParams(**LOOSE))
    strict = E.segment_everything(
        pets_predictor, photo, E.EverythingParams(**{**LOOSE, "stability_score_thresh": 0.99})
    )
    assert len(strict) < len(loose)
    assert all(m.stability_score >= 0.99 for m in strict)


def test_min_region_area_cleans_masks(pets_predictor, photo):
    params = E.EverythingParams(**LOOSE, min_mask_region_area=400)
    for m in E.segment_everything(pets_predictor, photo, params):
        same, changed = E.remove_small_regions(np.pad(m.mask, 1), 400, "islands")
        assert not changed


def test_progress_and_cancel(test_model, rng):
    p = ImagePredictor(test_model, device="cpu", precision="fp32")
    image = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
    params = E.EverythingParams(points_per_side=4, points_per_batch=5, pred_iou_thresh=0.0)
    recs = []
    job = E.iter_everything(p, image, params)
    while True:
        try:
            recs.append(next(job))
        except StopIteration:
            break
    assert recs[-1].step == recs[-1].total == 4  # 16 points in batches of 5
    cancel = threading.Event()
    job = E.iter_everything(p, image, params, cancel)
    next(job)
    cancel.set()
    with pytest.raises(E.Cancelled):
        next(job)
    with pytest.raises(ValueError, match="2D image"):
        E.segment_everything(p, np.zeros((0, 5, 3), np.uint8))


def test_one_colour_image_gives_no_error(test_model):
    p = ImagePredictor(test_model, device="cpu", precision="fp32")
    out = E.segment_everything(p, np.full((50, 70, 3), 128, np.uint8), E.EverythingParams(4))
    assert isinstance(out, list)


# -- parity with Meta's generator -------------------------------------------------------------


def _meta_pair():
    pytest.importorskip("sam2", reason="Meta's sam2 package is not installed")
    from sam2.build_sam import build_sam2

    from sam_pets.model import build_model

    torch.manual_seed(0)
    meta = build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cpu", mode="eval")
    with torch.no_grad():
        for mlp in meta.sam_mask_decoder.output_hypernetworks_mlps:
            mlp.layers[2].weight.mul_(20.0)
    ours = build_model("sam2.1_hiera_tiny")
    ours.load_state_dict({k: v for k, v in meta.state_dict().items() if k in ours.state_dict()})
    return meta, ImagePredictor(ours, device="cpu", precision="fp32")


def _check_parity(meta_model, ours, image, **kw):
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    gen = SAM2AutomaticMaskGenerator(meta_model, **kw)
    with torch.inference_mode():
        theirs = gen.generate(image)
    mine = E.segment_everything(ours, image, E.EverythingParams(**kw))
    assert len(theirs) >= 5, "the test needs masks to compare"
    hw = image.shape[:2]
    a = np.stack([m.full(hw) for m in mine]).reshape(len(mine), -1).astype(np.float32)
    b = np.stack([t["segmentation"] for t in theirs]).reshape(len(theirs), -1)
    b = b.astype(np.float32)
    inter = a @ b.T
    iou = inter / (a.sum(1)[:, None] + b.sum(1)[None] - inter)
    assert (iou.max(1) >= 0.99).mean() >= 0.99
    assert (iou.max(0) >= 0.99).mean() >= 0.99
    match = iou.argmax(1)
    for m, k in zip(mine, match, strict=True):
        assert abs(m.predicted_iou - theirs[k]["predicted_iou"]) <= 1e-4
        assert abs(m.stability_score - theirs[k]["stability_score"]) <= 1e-4
    assert len(mine) == len(theirs)


@pytest.mark.parity
def test_parity_with_meta_generator(photo):
    meta, ours = _meta_pair()
    # every threshold active and passed by some masks; NMS off, so that many masks compare
    kw = dict(points_per_side=8, pred_iou_thresh=0.5, stability_score_thresh=0.4)
    _check_parity(meta, ours, photo, box_nms_thresh=1.0, **kw)


@pytest.mark.parity
def test_parity_with_meta_generator_m2m(photo):
    meta, ours = _meta_pair()
    kw = dict(points_per_side=8, pred_iou_thresh=0.5, stability_score_thresh=0.4)
    _check_parity(meta, ours, photo, box_nms_thresh=1.0, use_m2m=True, **kw)


@pytest.mark.parity
def test_parity_with_meta_generator_default_nms(photo):
    """Meta's box NMS (0.7) keeps the same survivor (random weights' masks overlap so much
    that one is left)."""
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    meta, ours = _meta_pair()
    kw = dict(points_per_side=8, pred_iou_thresh=0.5, stability_score_thresh=0.4)
    with torch.inference_mode():
        theirs = SAM2AutomaticMaskGenerator(meta, **kw).generate(photo)
    mine = E.segment_everything(ours, photo, E.EverythingParams(**kw))
    assert len(mine) == len(theirs) >= 1
    for m, t in zip(mine, theirs, strict=True):
        a, b = m.full(photo.shape[:2]), t["segmentation"]
        assert (a & b).sum() / (a | b).sum() >= 0.99
        assert m.point == tuple(t["point_coords"][0])
        assert abs(m.predicted_iou - t["predicted_iou"]) <= 1e-4


@pytest.mark.parity
@pytest.mark.slow
def test_parity_with_meta_generator_crops(photo):
    meta, ours = _meta_pair()
    kw = dict(points_per_side=8, pred_iou_thresh=0.5, stability_score_thresh=0.2)
    _check_parity(
        meta,
        ours,
        photo,
        box_nms_thresh=1.0,
        crop_nms_thresh=1.0,
        crop_n_layers=1,
        mask_threshold=1.5,
        **kw,
    )
