"""Robustness job with a scripted predictor; report files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sam_pets.eval.perturb import LEVELS
from sam_pets.eval.robustness import RobustnessConfig, iter_robustness
from sam_pets.eval.robustness_report import write_robustness_report
from sam_pets.progress import run_job

from .conftest import FakePredictor


class DarkSensitive(FakePredictor):
    """The box prompt's filled box, or nothing once the image is darker than 90 on average."""

    def set_image(self, image):
        super().set_image(image)
        self.dark = image.mean() < 90

    def predict(self, **kw):
        pred = super().predict(**kw)
        if self.dark:
            pred.masks[:] = False
        return pred


def test_robustness_hand_computed(synthetic_dataset, tmp_path):
    cfg = RobustnessConfig(levels=3, perturbations=("brightness_decrease", "contrast_increase"))
    pred = DarkSensitive()
    res = run_job(iter_robustness(pred, synthetic_dataset, cfg, {"source": "fake"}), show=False)
    # images are grey 100: brightness -20 -> 80 (dark), -45 -> 55 (dark)
    assert res.levels("brightness_decrease") == [0, 20, 45]
    s = res.summary()
    assert s["perturbations"]["brightness_decrease"]["mean_dice"] == [1.0, 0.0, 0.0]
    assert s["perturbations"]["contrast_increase"]["mean_dice"] == [1.0, 1.0, 1.0]
    assert s["n_images"] == 3 and s["n_objects"] == 4
    # clean image once + 2 perturbed levels x 2 perturbations, per image
    assert pred.embeds == 3 * (1 + 2 * 2)
    assert len(res.examples["contrast_increase"]) == 3 and res.example_item == "cat_a"
    index = write_robustness_report(res, tmp_path / "rep")
    assert "brightness_decrease" in index.read_text()
    for name in ("robustness.png", "dice_contrast_increase.png", "examples/contrast_increase.png"):
        assert (tmp_path / "rep" / name).stat().st_size > 1000
    data = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert data["perturbations"]["contrast_increase"]["levels"] == [1.0, 1.04, 1.25]


def test_robustness_seeded(synthetic_dataset):
    cfg = RobustnessConfig(levels=2, perturbations=("gaussian_noise",), prompt="center")

    class Mean(FakePredictor):
        def set_image(self, image):
            super().set_image(image)
            self.means = getattr(self, "means", []) + [float(image.mean())]

    a, b = Mean(), Mean()
    run_job(iter_robustness(a, synthetic_dataset, cfg), show=False)
    run_job(iter_robustness(b, synthetic_dataset, cfg), show=False)
    assert a.means == b.means and len(set(a.means)) > 1


def test_config_errors():
    with pytest.raises(ValueError, match="prompt"):
        RobustnessConfig(prompt="random")
    with pytest.raises(ValueError, match="levels"):
        RobustnessConfig(levels=11)
    with pytest.raises(ValueError, match="perturbations"):
        RobustnessConfig(perturbations=("fog",))
    assert len(LEVELS) == len(RobustnessConfig().perturbations)
    assert np.isclose(LEVELS["contrast_decrease"][5], 0.6)
