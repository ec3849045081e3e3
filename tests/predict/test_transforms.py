"""Mask upsampling: the sign-change path for big images against plain interpolation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sam_pets.predict import ImagePredictor
from sam_pets.predict import transforms as T


def _plain(logits: torch.Tensor, hw: tuple[int, int]) -> np.ndarray:
    h, w = logits.shape[-2:]
    out = F.interpolate(logits.reshape(-1, 1, h, w), hw, mode="bilinear", align_corners=False)
    return (out > 0).reshape(*logits.shape[:-2], *hw).numpy()


def _smooth_logits(lead: tuple[int, ...], size: int, seed: int) -> torch.Tensor:
    """Blob-like logits, as a decoder gives: a coarse random field upsampled to ``size``."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(int(np.prod(lead)), 1, 6, 6, generator=g) * 10
    field = F.interpolate(coarse, (size, size), mode="bilinear", align_corners=False)
    return field.reshape(*lead, size, size)


@pytest.fixture
def always_sign_change(monkeypatch):
    monkeypatch.setattr(T, "LARGE_MASK_PIXELS", 0)


@pytest.mark.parametrize(
    ("size", "hw"),
    [
        (64, (1500, 2000)),  # the built-in model's 64 x 64 masks, upsampled 23-31x
        (256, (1031, 1337)),  # odd sizes
        (256, (2000, 900)),
        (256, (100, 90)),  # downsampling
        (64, (64, 64)),  # same size
        (256, (1, 700)),
        (256, (700, 1)),
        (2, (10, 10)),
    ],
)
def test_sign_change_path_equals_plain_interpolation(always_sign_change, size, hw):
    logits = _smooth_logits((2, 3), size, seed=size + hw[0])
    got = T.upsample_masks(logits, hw)
    assert got.dtype == bool and got.shape == (2, 3, *hw)
    np.testing.assert_array_equal(got, _plain(logits, hw))


def test_noise_like_logits_fall_back_to_plain_interpolation(always_sign_change, monkeypatch):
    # every other low-res pixel changes sign (an untrained model): the sign-change path would
    # cost more than interpolating every pixel, so the plain path runs
    calls = []
    monkeypatch.setattr(T, "_plain_masks", lambda lg, hw: calls.append(hw) or _plain(lg, hw))
    logits = torch.randn(3, 256, 256, generator=torch.Generator().manual_seed(1)) * 5
    np.testing.assert_array_equal(
        T.upsample_masks(logits, (1200, 1600)), _plain(logits, (1200, 1600))
    )
    assert calls == [(1200, 1600)]
    calls.clear()
    T.upsample_masks(_smooth_logits((3,), 256, seed=2), (1200, 1600))
    assert calls == []


def test_row_exactly_on_a_source_row_keeps_a_tiny_positive_sign():
    # 256 -> 768: output row 301 lands exactly on source row 100 (weight 0), whose logit is
    # tiny but positive; the sign change to row 101 must start after it
    logits = torch.full((1, 256, 8), -5.0)
    logits[0, :20] = 5.0
    logits[0, 100], logits[0, 101] = 1e-14, -10.0
    np.testing.assert_array_equal(
        T.upsample_masks(logits, (768, 1400)), _plain(logits, (768, 1400))
    )


def test_small_outputs_take_plain_interpolation(monkeypatch):
    monkeypatch.setattr(T, "LARGE_MASK_PIXELS", 10**9)
    logits = _smooth_logits((1,), 64, seed=3)
    np.testing.assert_array_equal(T.upsample_masks(logits, (300, 400)), _plain(logits, (300, 400)))


def test_predictor_masks_of_a_big_image_match_its_logits(test_model):
    """The bool masks (sign-change path) agree with the full-size logits of the same call."""
    rng = np.random.default_rng(0)
    image = (rng.random((1100, 1400, 3)) * 255).astype(np.uint8)
    assert image.shape[0] * image.shape[1] >= T.LARGE_MASK_PIXELS
    pred = ImagePredictor(test_model, device="cpu", precision="fp32")
    pred.set_image(image)
    pts, lab = np.array([[700.0, 500.0], [300.0, 200.0]]), np.array([1, 0])
    masks = pred.predict(pts, lab, multimask=True).masks
    logits = pred.predict(pts, lab, multimask=True, return_logits=True).masks
    assert masks.shape == logits.shape == (3, 1100, 1400)
    assert ((masks.mean(axis=(1, 2)) > 0.05) & (masks.mean(axis=(1, 2)) < 0.95)).any()
    assert (masks != (logits > 0)).sum() <= 2
