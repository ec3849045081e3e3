"""PromptSession and Candidates (no Qt): prediction, lazy candidate masks, commit / undo."""

from __future__ import annotations

import numpy as np
import pytest

from sam_pets.predict.session import PromptSession


class CountingPredictor:
    """A real ImagePredictor that counts how many candidate masks are made."""

    def __init__(self, predictor):
        self.inner, self.made = predictor, 0

    def predict(self, *args, **kwargs):
        pred = self.inner.predict(*args, **kwargs)
        mask = pred.mask

        def counted(i):
            self.made += 1
            return mask(i)

        pred.mask = counted
        return pred


@pytest.fixture
def predictor(test_model, pet_image):
    from sam_pets.predict import ImagePredictor

    p = ImagePredictor(test_model, device="cpu", precision="fp32")
    p.set_image(pet_image)
    return p


def test_one_click_makes_only_the_shown_candidate(predictor, pet_image):
    counting = CountingPredictor(predictor)
    s = PromptSession()
    s.set_prompts([[250.0, 180.0]], [1])
    cands = s.predict(counting)
    assert counting.made == 1  # the best one, made by predict (in the worker in napari)
    eager = predictor.predict(np.array([[250.0, 180.0]]), np.array([1]))
    order = np.argsort(-eager.scores)
    np.testing.assert_array_equal(cands.mask, eager.masks[order[0]])
    assert cands.mask.shape == pet_image.shape[:2] and cands.mask.dtype == bool
    assert cands.cycle() == 1 and counting.made == 1  # made when shown, not when selected
    assert cands.made(0) and not cands.made(1)
    np.testing.assert_array_equal(cands.mask, eager.masks[order[1]])
    assert counting.made == 2
    cands.mask  # noqa: B018 - made once, then kept
    assert counting.made == 2
    assert len(cands.masks) == 3 and counting.made == 3
    assert cands.cycle() == 2 and cands.cycle() == 0


def test_added_click_feeds_the_shown_candidates_logits(predictor):
    s = PromptSession()
    s.set_prompts([[250.0, 180.0]], [1])
    first = s.predict(predictor)
    first.cycle()
    s.set_prompts([[250.0, 180.0], [60.0, 40.0]], [1, 0])
    np.testing.assert_array_equal(s._mask_input()[0], first.logits[1])
    second = s.predict(predictor)
    assert len(second.scores) == 1 and second.mask.any()


def test_added_click_gets_no_previous_mask_without_feedback(predictor):
    predictor.mask_feedback = False
    s = PromptSession()
    s.set_prompts([[250.0, 180.0]], [1])
    s.predict(predictor)
    s.set_prompts([[250.0, 180.0], [60.0, 40.0]], [1, 0])
    second = s.predict(predictor)
    ref = predictor.predict(
        np.array([[250.0, 180.0], [60.0, 40.0]]), np.array([1, 0]), multimask=False
    )
    np.testing.assert_array_equal(second.mask, ref.masks[0])
    np.testing.assert_allclose(second.logits, ref.low_res_logits, atol=1e-5)
    # a mask given as a prompt is not feedback: it always goes in
    s.mask_prompt = ref.low_res_logits[0]
    np.testing.assert_array_equal(s._mask_input(feedback=False)[0], ref.low_res_logits[0])


def test_commit_and_undo_write_the_shown_candidate(predictor, pet_image):
    labels = np.zeros(pet_image.shape[:2], np.uint16)
    s = PromptSession()
    s.set_prompts([[250.0, 180.0]], [1])
    s.predict(predictor).cycle()
    shown = s.candidates.mask.copy()
    label = s.commit(labels)
    assert label == 1
    np.testing.assert_array_equal(labels == 1, shown)
    assert s.undo(labels) == 1 and not labels.any()
