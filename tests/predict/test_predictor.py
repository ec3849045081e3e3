"""ImagePredictor on the small test config with real and synthetic images."""

from __future__ import annotations

import numpy as np
import pytest

from sam_pets.predict import ImagePredictor
from sam_pets.predict.transforms import to_float_rgb, xy_to_yx, yx_to_xy


@pytest.fixture
def predictor(test_model):
    return ImagePredictor(test_model, device="cpu", precision="fp32")


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((40, 60), np.uint8),
        np.full((40, 60, 3), 200, np.uint8),
        np.full((40, 60, 4), 7, np.uint8),
        (np.arange(40 * 60).reshape(40, 60) * 17).astype(np.uint16),
        np.linspace(0, 1, 40 * 60 * 3).reshape(40, 60, 3).astype(np.float32),
        np.linspace(-5, 300, 40 * 60).reshape(40, 60).astype(np.float64),
    ],
    ids=["grey", "rgb", "rgba", "uint16", "float01", "float-any"],
)
def test_accepts_layouts_and_dtypes(predictor, image):
    predictor.set_image(image)
    pred = predictor.predict(np.array([[30.0, 20.0]]), np.array([1]))
    assert pred.masks.shape == (3, 40, 60) and pred.masks.dtype == bool
    assert pred.scores.shape == (3,) and pred.low_res_logits.shape == (3, 32, 32)


def test_float_rule():
    a = to_float_rgb(np.array([[0, 65535]], np.uint16))
    assert a.shape == (1, 2, 3) and a.min() == 0.0 and a.max() == 1.0
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        to_float_rgb(np.zeros((2, 3, 5)))


def test_second_set_image_hits_cache(predictor, pet_image, monkeypatch):
    predictor.set_image(pet_image)
    calls = []
    monkeypatch.setattr(predictor, "embed", lambda img: calls.append(1))
    predictor.set_image(pet_image.copy())
    assert calls == [] and predictor.cache.hits == 1


def test_disk_cache_survives_a_new_predictor(test_model, pet_image, tmp_path, monkeypatch):
    first = ImagePredictor(test_model, device="cpu", cache_dir=tmp_path)
    feats = first.set_image(pet_image)
    assert len(list(tmp_path.glob("*.pt"))) == 1
    second = ImagePredictor(test_model, device="cpu", cache_dir=tmp_path)
    monkeypatch.setattr(second, "embed", lambda img: pytest.fail("encoder ran"))
    again = second.set_image(pet_image)
    assert np.array_equal(again.image_embed.numpy(), feats.image_embed.numpy())


def test_new_model_invalidates_cache(predictor, pet_image):
    from sam_pets.model import build_model

    predictor.set_image(pet_image)
    a = predictor.predict(np.array([[250.0, 180.0]]), np.array([1])).low_res_logits
    predictor.set_model(build_model("test", seed=5))
    predictor.set_image(pet_image)
    b = predictor.predict(np.array([[250.0, 180.0]]), np.array([1])).low_res_logits
    assert predictor.cache.hits == 0 and not np.allclose(a, b)


def test_decoder_only_swap_keeps_embeddings(predictor, pet_image, monkeypatch):
    import copy

    import torch

    predictor.set_image(pet_image)
    click = (np.array([[250.0, 180.0]]), np.array([1]))
    a = predictor.predict(*click).low_res_logits
    tuned = copy.deepcopy(predictor.model)
    with torch.no_grad():  # a decoder fine-tune on cached embeddings: conv_s0/s1 stay
        for name, p in tuned.sam_mask_decoder.named_parameters():
            if not name.startswith(("conv_s0", "conv_s1")):
                p.add_(0.05 * torch.randn_like(p))
    embed = predictor.embed
    monkeypatch.setattr(predictor, "embed", lambda img: pytest.fail("encoder ran"))
    predictor.set_model(tuned)
    assert predictor.is_image_set  # the current image is still ready
    b = predictor.predict(*click).low_res_logits
    assert not np.allclose(a, b)
    predictor.set_image(pet_image)  # from the cache
    assert predictor.cached_features(pet_image) is not None
    # the high-res skips of the features pass through conv_s0: changing it changes them
    changed = copy.deepcopy(tuned)
    with torch.no_grad():
        changed.sam_mask_decoder.conv_s0.weight.mul_(0.5)
    monkeypatch.setattr(predictor, "embed", embed)
    predictor.set_model(changed)
    assert not predictor.is_image_set and predictor.cached_features(pet_image) is None


def test_prompts_and_batches(predictor, pet_image):
    predictor.set_image(pet_image)
    h, w = pet_image.shape[:2]
    one = predictor.predict(box_xyxy=np.array([50, 40, 400, 330]), multimask=False)
    assert one.masks.shape == (1, h, w) and one.object_scores.shape == ()
    boxes = np.array([[50, 40, 400, 330], [0, 0, 100, 100]])
    many = predictor.predict(box_xyxy=boxes, multimask=True)
    assert many.masks.shape == (2, 3, h, w) and many.scores.shape == (2, 3)
    combo = predictor.predict(np.array([[300, 100]]), np.array([0]), np.array([50, 40, 400, 330]))
    assert combo.masks.shape == (3, h, w)
    refined = predictor.predict(
        np.array([[250.0, 180.0]]),
        np.array([1]),
        mask_logits=one.low_res_logits,
        multimask=False,
    )
    assert refined.masks.shape == (1, h, w)
    logits = predictor.predict(np.array([[250.0, 180.0]]), np.array([1]), return_logits=True)
    assert logits.masks.dtype == np.float32


@pytest.mark.parametrize("size", [(375, 500), (1100, 1400)], ids=["small", "big"])
def test_lazy_masks_equal_eager_ones(predictor, pet_image, size):
    from skimage.transform import resize

    image = pet_image if size == pet_image.shape[:2] else resize(pet_image, size)
    predictor.set_image(image)
    pt, lab = np.array([[250.0, 180.0]]), np.array([1])
    eager = predictor.predict(pt, lab)
    lazy = predictor.predict(pt, lab, lazy_masks=True)
    assert lazy.masks is None
    np.testing.assert_array_equal(lazy.scores, eager.scores)
    np.testing.assert_array_equal(lazy.low_res_logits, eager.low_res_logits)
    for i in range(3):
        np.testing.assert_array_equal(lazy.mask(i), eager.masks[i])
        assert np.shares_memory(eager.mask(i), eager.masks)
    with pytest.raises(ValueError, match="single prompt set"):
        predictor.predict(box_xyxy=np.array([[0, 0, 9, 9], [1, 1, 8, 8]]), lazy_masks=True)
    with pytest.raises(ValueError, match="boolean masks"):
        predictor.predict(pt, lab, lazy_masks=True, return_logits=True)


def test_fast_and_reference_decoders_agree(test_model, pet_image):
    fast = ImagePredictor(test_model, device="cpu", fast=True)
    slow = ImagePredictor(test_model, device="cpu", fast=False)
    for p in (fast, slow):
        p.set_image(pet_image)
    args = (np.array([[250.0, 180.0], [20, 30]]), np.array([1, 0]), np.array([60, 40, 420, 350]))
    a, b = fast.predict(*args, return_logits=True), slow.predict(*args, return_logits=True)
    assert np.abs(a.masks - b.masks).max() <= 1e-4 * np.abs(b.masks).max()
    assert np.allclose(a.scores, b.scores, atol=1e-6)


def test_bad_calls_have_clear_errors(predictor, pet_image):
    with pytest.raises(RuntimeError, match="set_image"):
        predictor.predict(np.array([[1.0, 1.0]]), np.array([1]))
    predictor.set_image(pet_image)
    with pytest.raises(ValueError, match="labels"):
        predictor.predict(np.array([[1.0, 1.0]]))
    with pytest.raises(ValueError, match="points_xy must be"):
        predictor.predict(np.array([[1.0, 1.0, 1.0]]), np.array([1]))
    with pytest.raises(ValueError, match="box_xyxy"):
        predictor.predict(box_xyxy=np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="low-res logits"):
        predictor.predict(np.array([[1.0, 1.0]]), np.array([1]), mask_logits=np.zeros((10, 10)))


def test_bf16_on_cpu_close_to_fp32(test_model, pet_image):
    fp32 = ImagePredictor(test_model, device="cpu", precision="fp32")
    bf16 = ImagePredictor(test_model, device="cpu", precision="bf16")
    for p in (fp32, bf16):
        p.set_image(pet_image)
    a = fp32.predict(box_xyxy=np.array([50, 40, 400, 330]), multimask=False).masks
    b = bf16.predict(box_xyxy=np.array([50, 40, 400, 330]), multimask=False).masks
    assert (a == b).mean() > 0.95


def test_napari_coordinate_flip_is_one_function():
    yx = np.array([[10.0, 20.0], [3.0, 4.0]])
    assert np.array_equal(yx_to_xy(yx), [[20.0, 10.0], [4.0, 3.0]])
    assert np.array_equal(xy_to_yx(yx_to_xy(yx)), yx)


def test_auto_device_is_cpu_here(test_model):
    import torch

    p = ImagePredictor(test_model)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert p.device.type in (expected, "mps")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_prompts_are_refused(predictor, bad):
    predictor.set_image(np.zeros((40, 60, 3), np.uint8))
    with pytest.raises(ValueError, match="points_xy must be finite"):
        predictor.predict(np.array([[bad, 5.0]]), np.array([1]))
    with pytest.raises(ValueError, match="box_xyxy must be finite"):
        predictor.predict(box_xyxy=np.array([0.0, 0.0, bad, 10.0]))


def test_prompts_outside_the_image_are_allowed(predictor):
    predictor.set_image(np.zeros((40, 60, 3), np.uint8))
    pred = predictor.predict(np.array([[500.0, -20.0]]), np.array([1]), multimask=False)
    assert pred.masks.shape == (1, 40, 60)
