"""Robustness perturbations: levels as specified, integers clamped to 0..255, seeded."""

from __future__ import annotations

import numpy as np
import pytest

from sam_pets.eval.perturb import LEVELS, PERTURBATIONS, level_indices, perturb


@pytest.fixture
def image():
    return np.random.default_rng(0).integers(0, 256, (24, 30, 3), dtype=np.uint8)


def test_levels_as_in_the_study():
    assert len(PERTURBATIONS) == 8 and all(len(v) == 10 for v in LEVELS.values())
    assert LEVELS["gaussian_noise"] == (0, 2, 4, 6, 8, 10, 12, 14, 16, 18)
    assert LEVELS["gaussian_blur"] == tuple(range(10))
    assert LEVELS["contrast_increase"][-4:] == (1.1, 1.15, 1.20, 1.25)
    assert LEVELS["contrast_decrease"][-3:] == (0.30, 0.20, 0.10)
    assert LEVELS["brightness_increase"] == LEVELS["occlusion"] == tuple(range(0, 50, 5))
    assert LEVELS["salt_and_pepper"][-1] == 0.18


@pytest.mark.parametrize("name", PERTURBATIONS)
def test_level_zero_is_identity_and_all_levels_are_uint8(name, image):
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(perturb(image, name, LEVELS[name][0], rng), image)
    for level in LEVELS[name][1:]:
        out = perturb(image, name, level, np.random.default_rng(1))
        assert out.dtype == np.uint8 and out.shape == image.shape
    assert perturb(image, name, LEVELS[name][-1], np.random.default_rng(1)) is not image


@pytest.mark.parametrize("name", ["gaussian_noise", "occlusion", "salt_and_pepper"])
def test_random_perturbations_are_seeded(name, image):
    a = perturb(image, name, LEVELS[name][5], np.random.default_rng(7))
    b = perturb(image, name, LEVELS[name][5], np.random.default_rng(7))
    c = perturb(image, name, LEVELS[name][5], np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_contrast_and_brightness_clamp():
    img = np.array([[[0, 100, 250]]], np.uint8)
    np.testing.assert_array_equal(perturb(img, "contrast_increase", 1.25, None), [[[0, 125, 255]]])
    np.testing.assert_array_equal(perturb(img, "contrast_decrease", 0.1, None), [[[0, 10, 25]]])
    np.testing.assert_array_equal(perturb(img, "brightness_increase", 10, None), [[[10, 110, 255]]])
    np.testing.assert_array_equal(perturb(img, "brightness_decrease", 45, None), [[[0, 55, 205]]])
    np.testing.assert_array_equal(
        perturb(img, "contrast_increase", 1.01, None), [[[0, 101, 252]]]
    )  # 252.5 rounds to even


def test_blur_hand_computed():
    img = np.zeros((5, 5, 3), np.uint8)
    img[2, 2] = 160
    once = perturb(img, "gaussian_blur", 1, None)[..., 0]
    np.testing.assert_array_equal(once[1:4, 1:4], [[10, 20, 10], [20, 40, 20], [10, 20, 10]])
    assert once.sum() == 160
    twice = perturb(img, "gaussian_blur", 2, None)[..., 0]
    assert twice[2, 2] == round(160 * 36 / 256)  # centre of the 5x5 binomial: 36/256


def test_occlusion_square():
    img = np.full((30, 40, 3), 200, np.uint8)
    out = perturb(img, "occlusion", 15, np.random.default_rng(0))
    black = (out == 0).all(-1)
    assert black.sum() == 225
    rows, cols = np.nonzero(black)
    assert np.ptp(rows) == np.ptp(cols) == 14
    big = perturb(np.full((10, 10, 3), 9, np.uint8), "occlusion", 45, np.random.default_rng(0))
    assert (big == 0).all()  # an edge larger than the image blacks it out


def test_gaussian_noise_std():
    img = np.full((200, 200, 3), 128, np.uint8)
    out = perturb(img, "gaussian_noise", 18, np.random.default_rng(0)).astype(float)
    assert abs(out.std() - 18) < 0.5 and abs(out.mean() - 128) < 0.3


def test_salt_and_pepper_amount():
    img = np.full((200, 200, 3), 128, np.uint8)
    out = perturb(img, "salt_and_pepper", 0.18, np.random.default_rng(0))
    changed = (out != 128).any(-1)
    assert abs(changed.mean() - 0.18) < 0.01
    white = (out == 255).all(-1)
    assert abs(white.sum() / changed.sum() - 0.5) < 0.03
    assert set(np.unique(out)) == {0, 128, 255}


def test_level_indices_and_errors(image):
    assert level_indices(10) == list(range(10))
    assert level_indices(3) == [0, 4, 9] or level_indices(3) == [0, 5, 9]
    assert level_indices(2) == [0, 9]
    with pytest.raises(ValueError, match="between 2 and 10"):
        level_indices(1)
    with pytest.raises(ValueError, match="unknown perturbation"):
        perturb(image, "fog", 1, None)
    with pytest.raises(ValueError, match="uint8"):
        perturb(image.astype(np.float32), "gaussian_blur", 1, None)
