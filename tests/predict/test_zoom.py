"""Zoom-in prediction: crop windows, moves into and out of a crop, and the predictor's paths.

The predictor tests use the built-in pets model on the bundled sample photo (a real cat, so
the first pass finds an object), and check each zoomed answer against the same steps done
by hand: crop the image, predict on the crop alone, paste the mask back.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from sam_pets.model import build_model, get_config
from sam_pets.predict import ImagePredictor
from sam_pets.predict import zoom as Z
from sam_pets.predict.images import read_image

BOX = np.array([120.0, 40.0, 380.0, 340.0], np.float32)  # around the sample's cat


@pytest.fixture(scope="module")
def pets_model():
    from sam_pets.model import resolve_model

    return resolve_model("pets")


@pytest.fixture(scope="module")
def photo():
    from sam_pets.samples import sample_path

    return read_image(sample_path())  # 375 x 500


@pytest.fixture
def zp(pets_model, photo, one_torch_thread):
    p = ImagePredictor(pets_model, device="cpu", precision="fp32", zoom=True)
    p.set_image(photo)
    return p


@pytest.fixture(scope="module")
def canvas(photo):
    """The photo on a larger grey canvas: the cat covers a part of it, not all."""
    big = np.full((700, 900, 3), 128, np.uint8)
    big[100:475, 200:700] = photo
    return big


@pytest.fixture
def zc(pets_model, canvas, one_torch_thread):
    # one candidate zoomed in on (tests that want each set zoom_candidates themselves)
    p = ImagePredictor(pets_model, device="cpu", precision="fp32", zoom=True, zoom_candidates=False)
    p.set_image(canvas)
    return p


CLICK = np.array([[450.0, 300.0]], np.float32)  # on the cat, in canvas pixels


def _on_crop(model, photo, window, **prompts):
    """Predict on the crop alone with a plain predictor (prompts already in its frame)."""
    p = ImagePredictor(model, device="cpu", precision="fp32")
    p.set_image(Z.crop(photo, window))
    return p.predict(**prompts)


def _crop_pass_by_hand(model, image, click, label, best, src, margin):
    """The crop around ``best`` (logits covering ``src``) and the click, predicted there."""
    region = Z.logits_box(best, src)
    region = np.concatenate([np.minimum(region[:2], click[0]), np.maximum(region[2:], click[0])])
    window = Z.window_around(region, image.shape[:2], margin)
    carried = Z.resample_logits(torch.from_numpy(best[None, None]), src, window)
    ref = _on_crop(
        model,
        image,
        window,
        points_xy=Z.points_into(click, window),
        labels=label,
        mask_logits=carried.numpy(),
        multimask=False,
    )
    return window, ref


# -- geometry --------------------------------------------------------------------------------
def test_window_adds_the_margin_of_each_side():
    # a 40 x 40 box: half its width left and right, half its height above and below
    assert Z.window_around([40, 40, 79, 79], (200, 200), 0.5) == (20, 20, 100, 100)
    assert Z.window_around([40, 40, 79, 79], (200, 200), 0.0) == (40, 40, 80, 80)
    assert Z.window_around([79, 79, 40, 40], (200, 200), 0.0) == (40, 40, 80, 80)  # any order
    # a side shorter than the smallest one grows about its centre
    assert Z.window_around([40, 40, 79, 49], (200, 200), 0.0) == (40, 29, 80, 61)


def test_tiny_boxes_get_the_smallest_side_and_stay_inside():
    side = Z.MIN_SIDE
    x0, y0, x1, y1 = Z.window_around([50, 50, 51, 51], (200, 200), 0.15)
    assert (x1 - x0, y1 - y0) == (side, side)
    assert x0 <= 50 and x1 >= 52  # still holds the box, about its centre
    # in a corner the window is shifted in, not cut down
    assert Z.window_around([0, 0, 1, 1], (200, 200), 0.15) == (0, 0, side, side)
    assert Z.window_around([198, 198, 199, 199], (200, 200), 0.15) == (
        200 - side,
        200 - side,
        200,
        200,
    )
    # an image smaller than the smallest side: the whole image
    assert Z.window_around([2, 2, 3, 3], (10, 20), 0.15) == (0, 0, 20, 10)


def test_huge_boxes_are_the_whole_image():
    assert Z.window_around([0, 0, 499, 374], (375, 500), 0.15) == (0, 0, 500, 375)
    assert Z.window_around([-50, -80, 900, 700], (375, 500), 0.15) == (0, 0, 500, 375)
    assert Z.is_full((0, 0, 500, 375), (375, 500)) and Z.is_full(None, (375, 500))
    assert not Z.is_full((0, 0, 499, 375), (375, 500))


def test_points_and_boxes_into_a_window():
    w = (100, 50, 300, 250)
    np.testing.assert_array_equal(Z.points_into([[100, 50], [150, 60]], w), [[0, 0], [50, 10]])
    np.testing.assert_array_equal(Z.box_into([110, 60, 200, 100], w), [10, 10, 100, 50])
    np.testing.assert_array_equal(
        Z.inside([[100, 50], [299.5, 249], [300, 100], [99, 100]], w), [True, True, False, False]
    )


def test_logits_box_reads_the_cells_in_image_pixels():
    logits = np.full((4, 4), -5.0, np.float32)
    logits[1:3, 2] = 5.0  # cells of 25 x 10 pixels over the window (100, 50, 200, 90)
    box = Z.logits_box(logits, (100, 50, 200, 90))
    np.testing.assert_allclose(box, [150, 60, 174, 79])
    assert Z.logits_box(np.full((4, 4), -1.0), (0, 0, 10, 10)) is None


def test_touching_an_inner_edge_but_not_the_image_border():
    hw = (100, 100)
    assert Z.touches_inner_edge([20, 20, 60, 60], (20, 30, 80, 90), hw)  # at the left edge
    assert not Z.touches_inner_edge([30, 40, 60, 60], (20, 30, 80, 90), hw)
    assert not Z.touches_inner_edge([0, 0, 60, 60], (0, 0, 80, 80), hw)  # image border


def test_resample_logits_between_windows():
    s = 8
    ramp = torch.arange(s, dtype=torch.float32).expand(s, s).clone()  # value = cell column
    same = Z.resample_logits(ramp, (0, 0, 80, 80), (0, 0, 80, 80))
    assert same is ramp
    # the right half of the image: cell j of the result sits on source column 4 + j / 2
    right = Z.resample_logits(ramp, (0, 0, 80, 80), (40, 0, 80, 80))
    np.testing.assert_allclose(right[0].numpy()[:-1], 3.75 + 0.5 * np.arange(s - 1), atol=1e-5)
    # outside the source window: background
    away = Z.resample_logits(ramp, (0, 0, 80, 80), (200, 200, 280, 280))
    np.testing.assert_allclose(away.numpy(), Z.OUTSIDE_LOGIT)
    # and back: the part both cover comes back (up to the bilinear blur at the seams)
    back = Z.resample_logits(right, (40, 0, 80, 80), (0, 0, 80, 80))
    np.testing.assert_allclose(back[0, 5:7].numpy(), ramp[0, 5:7].numpy(), atol=1e-5)


def test_paste_fills_the_rest():
    part = np.ones((2, 3), bool)
    out = Z.paste(part, (1, 2, 4, 4), (5, 6))
    assert out.shape == (5, 6) and out.sum() == 6 and out[2:4, 1:4].all()
    f = Z.paste(np.zeros((1, 2, 3), np.float32), (1, 2, 4, 4), (5, 6), fill=np.float32(-32))
    assert f.shape == (1, 5, 6) and f[0, 0, 0] == -32 and f[0, 2, 1] == 0


# -- the predictor ---------------------------------------------------------------------------
def test_box_is_predicted_on_its_crop_and_pasted_back(zp, pets_model, photo):
    pred = zp.predict(box_xyxy=BOX, multimask=False)
    window = Z.window_around(BOX, photo.shape[:2], zp.zoom_margin)
    assert pred.window == window
    assert pred.masks.shape == (1, 375, 500)
    ref = _on_crop(pets_model, photo, window, box_xyxy=Z.box_into(BOX, window), multimask=False)
    x0, y0, x1, y1 = window
    np.testing.assert_array_equal(pred.masks[0, y0:y1, x0:x1], ref.masks[0])
    assert not pred.masks[0, :y0].any() and not pred.masks[0, y1:].any()
    assert not pred.masks[0, :, :x0].any() and not pred.masks[0, :, x1:].any()
    np.testing.assert_allclose(pred.scores, ref.scores, atol=1e-5)
    np.testing.assert_allclose(pred.low_res_logits, ref.low_res_logits, atol=1e-4)
    # lazy and logits outputs agree with the masks, at the image's size
    lazy = zp.predict(box_xyxy=BOX, multimask=False, lazy_masks=True)
    np.testing.assert_array_equal(lazy.mask(0), pred.masks[0])
    logits = zp.predict(box_xyxy=BOX, multimask=False, return_logits=True)
    assert logits.masks.shape == (1, 375, 500)
    np.testing.assert_array_equal(logits.masks[0] > 0, pred.masks[0])


def test_without_zoom_nothing_changes(pets_model, photo, zp):
    plain = ImagePredictor(pets_model, device="cpu", precision="fp32")
    plain.set_image(photo)
    a = plain.predict(box_xyxy=BOX, multimask=False)
    b = zp.predict(box_xyxy=BOX, multimask=False, zoom=False)
    assert a.window is None and b.window is None
    np.testing.assert_array_equal(a.masks, b.masks)


def test_box_at_the_image_border(zp, pets_model, photo):
    box = np.array([0.0, 200.0, 90.0, 374.0], np.float32)
    pred = zp.predict(box_xyxy=box, multimask=False)
    x0, y0, x1, y1 = pred.window
    assert x0 == 0 and y1 == 375 and x1 < 500 and y0 > 0
    assert pred.masks.shape == (1, 375, 500)
    ref = _on_crop(
        pets_model, photo, pred.window, box_xyxy=Z.box_into(box, pred.window), multimask=False
    )
    np.testing.assert_array_equal(pred.masks[0, y0:y1, x0:x1], ref.masks[0])


def test_tiny_and_huge_boxes(zp, photo):
    tiny = zp.predict(box_xyxy=np.array([250.0, 180.0, 252.0, 181.0]), multimask=False)
    x0, y0, x1, y1 = tiny.window
    assert (x1 - x0, y1 - y0) == (Z.MIN_SIDE, Z.MIN_SIDE)
    assert tiny.masks.shape == (1, 375, 500)
    assert not tiny.masks[0, :y0].any() and not tiny.masks[0, :, x1:].any()
    huge = zp.predict(box_xyxy=np.array([0.0, 0.0, 499.0, 374.0]), multimask=False)
    assert huge.window is None  # the whole image: the image's own embedding, no crop
    plain = zp.predict(box_xyxy=np.array([0.0, 0.0, 499.0, 374.0]), multimask=False, zoom=False)
    np.testing.assert_array_equal(huge.masks, plain.masks)


def test_first_click_finds_the_object_then_predicts_in_its_crop(zc, pets_model, canvas):
    click, label = CLICK, np.array([1])
    pred = zc.predict(click, label, multimask=True)
    # by hand: the whole-image pass, then the crop around its best mask
    whole = zc.predict(click, label, multimask=True, zoom=False)
    best = whole.low_res_logits[whole.best()]
    window, ref = _crop_pass_by_hand(
        pets_model, canvas, click, label, best, (0, 0, 900, 700), zc.zoom_margin
    )
    assert not Z.is_full(window, canvas.shape[:2])
    assert pred.window == window
    assert pred.masks.shape == (1, 700, 900) and pred.scores.shape == (1,)
    x0, y0, x1, y1 = window
    np.testing.assert_array_equal(pred.masks[0, y0:y1, x0:x1], ref.masks[0])
    np.testing.assert_allclose(pred.low_res_logits, ref.low_res_logits, atol=1e-4)


def test_each_candidate_is_zoomed_in_on_by_default_where_zoom_pays(pets_model):
    assert ImagePredictor(pets_model, device="cpu").zoom_candidates  # 256 px: cheap crops
    assert not ImagePredictor(pets_model, device="cpu", zoom_candidates=False).zoom_candidates
    meta_sized = build_model(get_config("tiny"))  # 1024 px: a crop costs seconds on a CPU
    assert not ImagePredictor(meta_sized, device="cpu").zoom_candidates
    assert ImagePredictor(meta_sized, device="cpu", zoom_candidates=True).zoom_candidates
    swapped = ImagePredictor(pets_model, device="cpu")
    swapped.set_model(meta_sized)  # the default follows the model in use
    assert not swapped.zoom_candidates


def test_first_click_keeps_the_candidate_that_scores_best_zoomed_in(zc):
    click, label = CLICK, np.array([1])
    zc.zoom_candidates = True
    whole = zc.predict(click, label, multimask=True, zoom=False)
    assert whole.low_res_logits.shape[0] == 3
    trials = [
        zc.predict(click, label, mask_logits=whole.low_res_logits[c], multimask=False)
        for c in range(3)
    ]
    best = trials[int(np.argmax([t.scores[0] for t in trials]))]
    misses = zc.crop_cache.misses
    pred = zc.predict(click, label, multimask=True)
    assert zc.crop_cache.misses == misses  # the three crops were embedded once
    assert pred.window == best.window and pred.masks.shape == (1, 700, 900)
    np.testing.assert_array_equal(pred.masks, best.masks)
    np.testing.assert_allclose(pred.scores, best.scores, atol=1e-6)
    lazy = zc.predict(click, label, multimask=True, lazy_masks=True)
    np.testing.assert_array_equal(lazy.mask(0), best.masks[0])
    logits = zc.predict(click, label, multimask=True, return_logits=True)
    np.testing.assert_array_equal(logits.masks > 0, best.masks)


def test_first_click_window_looks_near_the_click_then_crops_around_the_mask(zc, pets_model, canvas):
    click, label = CLICK, np.array([1])
    zc.first_click_window = 0.75  # a 675-px square around the click, the cat inside it
    pred = zc.predict(click, label, multimask=True)
    start = (113, 0, 788, 675)  # 675 px centred on the click, shifted down into the image
    # by hand: the first pass on the window's crop alone, then the crop around its best mask
    first = _on_crop(pets_model, canvas, start, points_xy=Z.points_into(click, start), labels=label)
    best = first.low_res_logits[first.best()]
    window, ref = _crop_pass_by_hand(pets_model, canvas, click, label, best, start, zc.zoom_margin)
    assert pred.window == window
    x0, y0, x1, y1 = window
    assert pred.masks.shape == (1, 700, 900)
    np.testing.assert_array_equal(pred.masks[0, y0:y1, x0:x1], ref.masks[0])
    assert not pred.masks[0, :, :x0].any() and not pred.masks[0, y1:].any()


def test_first_click_window_keeps_a_cut_answer_and_drops_an_empty_one(zc, monkeypatch):
    click, label = CLICK, np.array([1])
    whole = zc.predict(click, label, multimask=True)
    zc.first_click_window = 0.05  # 45 px on the cat: its fur fills the window
    start = zc._first_window(click)
    assert start == (428, 278, 473, 323)
    cut = zc.predict(click, label, multimask=True)
    x0, y0, x1, y1 = cut.window  # the second pass crops around the answer inside the window
    assert start[0] - 1 <= x0 and x1 <= start[2] + 1 and start[1] - 1 <= y0 and y1 <= start[3] + 1
    assert not cut.masks[0, :, : start[0] - 1].any() and not cut.masks[0, : start[1] - 1].any()
    # an empty answer in the window: the whole image's, as without the option
    real = ImagePredictor._predict_in

    def nothing_in_the_window(self, window, *args):
        pred = real(self, window, *args)
        if window == start:
            pred = dataclasses.replace(pred, low_res_logits=np.full_like(pred.low_res_logits, -5))
        return pred

    monkeypatch.setattr(ImagePredictor, "_predict_in", nothing_in_the_window)
    empty = zc.predict(click, label, multimask=True)
    assert empty.window == whole.window
    np.testing.assert_array_equal(empty.masks, whole.masks)


def test_first_click_window_must_be_a_fraction(pets_model):
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="first_click_window"):
            ImagePredictor(pets_model, device="cpu", first_click_window=bad)


def test_later_clicks_keep_the_crop_and_leave_far_negatives_out(zc):
    first = zc.predict(CLICK, np.array([1]), multimask=True)
    window = first.window
    assert window is not None
    # a negative click inside the crop: same window, the click is used
    inner = np.array([CLICK[0], [window[0] + 5.0, window[1] + 5.0]])
    second = zc.predict(
        inner,
        np.array([1, 0]),
        mask_logits=first.low_res_logits[0][None],
        mask_window=window,
        multimask=False,
    )
    if not Z.touches_inner_edge(Z.logits_box(first.low_res_logits[0], window), window, (700, 900)):
        assert second.window == window
    # a negative click outside the crop changes nothing
    far = np.array([CLICK[0], [window[0] + 5.0, window[1] + 5.0], [2.0, 2.0]])
    assert second.window is not None and not Z.inside(far[2:], second.window).any()
    if second.window == window:
        third = zc.predict(
            far,
            np.array([1, 0, 0]),
            mask_logits=first.low_res_logits[0][None],
            mask_window=window,
            multimask=False,
        )
        np.testing.assert_array_equal(third.masks, second.masks)
        np.testing.assert_allclose(third.scores, second.scores, atol=1e-6)


def test_a_positive_click_outside_the_crop_moves_it(zc):
    first = zc.predict(CLICK, np.array([1]), multimask=True)
    x0, y0, x1, y1 = first.window
    outside = [x1 + 40.0, float(y0 + y1) / 2]
    assert x1 + 40 < 900 and not Z.inside([outside], first.window).any()
    pred = zc.predict(
        np.array([CLICK[0], outside]),
        np.array([1, 1]),
        mask_logits=first.low_res_logits[0][None],
        mask_window=first.window,
        multimask=False,
    )
    assert pred.window is None or Z.inside([outside], pred.window).all()


def test_crop_embeddings_are_cached(zp):
    zp.clear_crops()
    zp.predict(box_xyxy=BOX, multimask=False)
    misses = zp.crop_cache.misses
    zp.predict(box_xyxy=BOX + 1, multimask=False)  # another window: a new embedding
    assert zp.crop_cache.misses == misses + 1
    zp.predict(box_xyxy=BOX, multimask=False)  # back to the first: from the cache
    assert zp.crop_cache.misses == misses + 1 and zp.crop_cache.hits >= 1


def test_batched_boxes_zoom_each(zp):
    boxes = np.stack([BOX, np.array([10.0, 10.0, 100.0, 120.0], np.float32)])
    pred = zp.predict(box_xyxy=boxes, multimask=False)
    assert pred.masks.shape == (2, 1, 375, 500) and len(pred.window) == 2
    for k in range(2):
        one = zp.predict(box_xyxy=boxes[k], multimask=False)
        np.testing.assert_array_equal(pred.masks[k], one.masks)
        assert pred.window[k] == one.window


def test_zoom_needs_the_image(pets_model, photo):
    p = ImagePredictor(pets_model, device="cpu", precision="fp32", zoom=True)
    feats = p.embed(photo)
    p.set_features(feats, photo.shape[:2])
    with pytest.raises(RuntimeError, match="zoom crops the image"):
        p.predict(box_xyxy=BOX)
    p.set_features(feats, photo.shape[:2], photo)
    assert p.predict(box_xyxy=BOX, multimask=False).window is not None
    with pytest.raises(ValueError, match="features are of"):
        p.set_features(feats, photo.shape[:2], photo[:10])
    with pytest.raises(ValueError, match="zoom_margin"):
        ImagePredictor(pets_model, device="cpu", zoom_margin=-0.1)


def test_default_zoom_follows_the_input_size(pets_model, test_model):
    from sam_pets.model import build_model

    assert Z.default_for(pets_model)
    assert not Z.default_for(build_model("sam2.1_hiera_tiny", seed=0))


def test_a_decoder_swap_keeps_crop_embeddings_but_not_their_decoder_state(zp, pets_model):
    import copy

    before = zp.predict(box_xyxy=BOX, multimask=False)
    misses = zp.crop_cache.misses
    tuned = copy.deepcopy(pets_model)
    with torch.no_grad():
        for p in tuned.sam_mask_decoder.transformer.parameters():
            p.mul_(0.5)
    zp.set_model(tuned)  # same image encoder: the embeddings stay valid
    after = zp.predict(box_xyxy=BOX, multimask=False)
    assert zp.crop_cache.misses == misses  # the crop came from the cache
    fresh = ImagePredictor(tuned, device="cpu", precision="fp32", zoom=True)
    fresh.set_image(zp._image)
    np.testing.assert_allclose(
        after.low_res_logits, fresh.predict(box_xyxy=BOX, multimask=False).low_res_logits, atol=1e-4
    )
    assert not np.allclose(after.low_res_logits, before.low_res_logits)


def test_session_answers_a_first_click_quickly_then_from_each_candidate(zc):
    from sam_pets.predict.session import PromptSession

    zc.zoom_candidates = True
    label = np.array([1])
    s = PromptSession()
    s.set_prompts(CLICK, label)
    steps = list(s.predict_steps(zc))
    embedded = zc.crop_cache.misses
    assert len(steps) == 2 and s.candidates is steps[1]
    quick = zc.predict(CLICK, label, multimask=True, zoom_candidates=False)
    full = zc.predict(CLICK, label, multimask=True)
    assert zc.crop_cache.misses == embedded  # every crop came from the steps' cache
    assert embedded <= 3  # the quick crop was not embedded again for the second answer
    assert steps[0].window == quick.window and steps[1].window == full.window
    np.testing.assert_array_equal(steps[0].mask, quick.masks[0])
    np.testing.assert_array_equal(steps[1].mask, full.masks[0])
    assert s.predict(zc) is s.candidates  # predict() is the last answer
    # newer prompts are waiting: the quick answer alone
    waiting = PromptSession()
    waiting.set_prompts(CLICK, label)
    assert len(list(waiting.predict_steps(zc, stale=lambda: True))) == 1
    # a box, or a click added to the first: one answer
    boxed = PromptSession()
    boxed.set_prompts(np.zeros((0, 2)), np.zeros(0), np.array([300.0, 150.0, 620.0, 500.0]))
    assert len(list(boxed.predict_steps(zc))) == 1
    s.set_prompts(np.vstack([CLICK, [[470.0, 330.0]]]), np.array([1, 1]))
    assert len(list(s.predict_steps(zc))) == 1
