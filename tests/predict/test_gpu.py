"""CUDA paths (skipped without a GPU; run with ``-m gpu`` on a GPU machine)."""

import numpy as np
import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_cuda_fp32_matches_cpu(pet_image):
    from sam_pets.model import build_model
    from sam_pets.predict import ImagePredictor

    model = build_model("test", seed=0)
    cpu = ImagePredictor(model, device="cpu", precision="fp32")
    gpu = ImagePredictor(build_model("test", seed=0), device="cuda", precision="fp32")
    for p in (cpu, gpu):
        p.set_image(pet_image)
    a = cpu.predict(np.array([[250.0, 180.0]]), np.array([1]), return_logits=True)
    b = gpu.predict(np.array([[250.0, 180.0]]), np.array([1]), return_logits=True)
    assert np.abs(a.masks - b.masks).max() <= 1e-3 * np.abs(a.masks).max()


def test_auto_precision_is_bf16_on_cuda(pet_image):
    from sam_pets.model import build_model
    from sam_pets.predict import ImagePredictor

    p = ImagePredictor(build_model("tiny", seed=0))
    assert p.device.type == "cuda" and p.precision == "bf16"
    p.set_image(pet_image)
    pred = p.predict(box_xyxy=np.array([50, 40, 400, 330]), multimask=False)
    assert pred.masks.shape == (1, 375, 500)
