"""Numerical parity with Meta's reference implementation (the ``sam2`` package, test-only).

Both models get the same random weights; fp32 on CPU; max relative error (max |a - b| /
max |b|) must stay <= 1e-5 for the image features and for every decoder output.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.parity
sam2 = pytest.importorskip("sam2", reason="Meta's sam2 package is not installed")

TOL = 1e-5
META_CONFIGS = {
    "sam2.1_hiera_tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "sam2.1_hiera_small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "sam2.1_hiera_base_plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "sam2.1_hiera_large": "configs/sam2.1/sam2.1_hiera_l.yaml",
    "sam2_hiera_tiny": "configs/sam2/sam2_hiera_t.yaml",
}


def rel_err(a, b) -> float:
    a = torch.as_tensor(np.asarray(a, dtype=np.float64))
    b = torch.as_tensor(np.asarray(b, dtype=np.float64))
    assert a.shape == b.shape, (a.shape, b.shape)
    denom = b.abs().max().item()
    return (a - b).abs().max().item() / max(denom, 1e-12)


def build_pair(name: str, seed: int = 0):
    """Meta model with random weights, and ours loaded from its state dict."""
    from sam2.build_sam import build_sam2
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    from sam_pets.model import build_model
    from sam_pets.predict import ImagePredictor

    torch.manual_seed(seed)
    meta = build_sam2(META_CONFIGS[name], None, device="cpu", mode="eval")
    with torch.no_grad():
        for p in meta.parameters():
            p.normal_(0.0, 0.05)
    ours = build_model(name)
    state = {k: v for k, v in meta.state_dict().items() if k in ours.state_dict()}
    ours.load_state_dict(state, strict=True)
    return SAM2ImagePredictor(meta), ImagePredictor(ours, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def pair_tiny(pet_image):
    meta, ours = build_pair("sam2.1_hiera_tiny")
    with torch.inference_mode():
        meta.set_image(pet_image)
    ours.set_image(pet_image)
    return meta, ours


def test_image_features_match(pair_tiny):
    meta, ours = pair_tiny
    f = ours._features
    assert rel_err(f.image_embed, meta._features["image_embed"]) <= TOL
    assert rel_err(f.feat_s0, meta._features["high_res_feats"][0]) <= TOL
    assert rel_err(f.feat_s1, meta._features["high_res_feats"][1]) <= TOL


def _compare(meta_out, ours_out, logits=True):
    m_masks, m_iou, m_low = meta_out
    assert rel_err(ours_out.low_res_logits, m_low) <= TOL
    assert rel_err(ours_out.scores, m_iou) <= TOL
    assert rel_err(ours_out.masks, m_masks) <= TOL


def _meta_obj_score(meta: object, **kw) -> np.ndarray:
    """Object-score logit from Meta's decoder (its predictor discards it)."""
    captured = {}
    dec = meta.model.sam_mask_decoder

    def hook(module, args, out):
        captured["obj"] = out[3]

    handle = dec.register_forward_hook(hook)
    try:
        with torch.inference_mode():
            meta.predict(**kw)
    finally:
        handle.remove()
    return captured["obj"].float().numpy()[:, 0]


def test_one_positive_click_multimask(pair_tiny):
    meta, ours = pair_tiny
    pts, lab = np.array([[250.0, 180.0]]), np.array([1])
    with torch.inference_mode():
        m = meta.predict(
            point_coords=pts, point_labels=lab, multimask_output=True, return_logits=True
        )
    o = ours.predict(pts, lab, multimask=True, return_logits=True)
    _compare(m, o)
    obj = _meta_obj_score(meta, point_coords=pts, point_labels=lab, multimask_output=True)
    assert rel_err(np.atleast_1d(o.object_scores), obj) <= TOL


def test_box_and_negative_click_single_mask(pair_tiny):
    meta, ours = pair_tiny
    box = np.array([60.0, 40.0, 420.0, 350.0])
    pts, lab = np.array([[300.0, 100.0]]), np.array([0])
    with torch.inference_mode():
        m = meta.predict(
            point_coords=pts, point_labels=lab, box=box, multimask_output=False, return_logits=True
        )
    o = ours.predict(pts, lab, box_xyxy=box, multimask=False, return_logits=True)
    _compare(m, o)


def test_previous_logits_as_mask_input(pair_tiny):
    meta, ours = pair_tiny
    pts, lab = np.array([[250.0, 180.0], [100.0, 300.0]]), np.array([1, 0])
    first = ours.predict(pts[:1], lab[:1], multimask=True)
    prev = first.low_res_logits[first.best()][None]  # (1, 256, 256)
    with torch.inference_mode():
        m = meta.predict(
            point_coords=pts,
            point_labels=lab,
            mask_input=prev,
            multimask_output=False,
            return_logits=True,
        )
    o = ours.predict(pts, lab, mask_logits=prev, multimask=False, return_logits=True)
    _compare(m, o)


def test_several_prompt_sets_on_one_image(pair_tiny):
    meta, ours = pair_tiny
    boxes = np.array([[60.0, 40.0, 420.0, 350.0], [10.0, 10.0, 200.0, 200.0], [0, 0, 499, 374]])
    with torch.inference_mode():
        m = meta.predict(box=boxes, multimask_output=True, return_logits=True)
    o = ours.predict(box_xyxy=boxes, multimask=True, return_logits=True)
    assert o.masks.shape == (3, 3, 375, 500)
    _compare(m, o)


def test_mask_only_prompt(pair_tiny):
    meta, ours = pair_tiny
    prev = ours.predict(np.array([[250.0, 180.0]]), np.array([1])).low_res_logits[:1]
    with torch.inference_mode():
        m = meta.predict(mask_input=prev, multimask_output=True, return_logits=True)
    o = ours.predict(mask_logits=prev, multimask=True, return_logits=True)
    _compare(m, o)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    ["sam2.1_hiera_small", "sam2.1_hiera_base_plus", "sam2.1_hiera_large", "sam2_hiera_tiny"],
)
def test_other_configs_match(name, pet_image):
    meta, ours = build_pair(name, seed=1)
    with torch.inference_mode():
        meta.set_image(pet_image)
        m = meta.predict(
            point_coords=np.array([[200.0, 150.0]]),
            point_labels=np.array([1]),
            multimask_output=True,
            return_logits=True,
        )
    ours.set_image(pet_image)
    assert rel_err(ours._features.image_embed, meta._features["image_embed"]) <= TOL
    o = ours.predict(np.array([[200.0, 150.0]]), np.array([1]), multimask=True, return_logits=True)
    _compare(m, o)
