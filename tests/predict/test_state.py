"""The Annotator's prediction state machine without Qt: the races it must get right."""

from __future__ import annotations

from sam_pets.predict.state import Embed, Predict, PredictionState

A, B = ("img-a", ()), ("img-b", ())  # plane keys
MODEL, NEW_MODEL = object(), object()


def _ready(state: PredictionState, key=A, model=MODEL) -> None:
    assert state.want_embedding(key)
    assert state.embedded(key, model, model, key) is Embed.READY


def test_a_plane_is_embedded_once_and_then_ready():
    s = PredictionState()
    assert s.idle and not s.ready
    assert s.want_embedding(A) and not s.idle
    assert not s.want_embedding(A)  # under way: not again
    assert s.embedded(A, MODEL, MODEL, A) is Embed.READY
    assert s.ready and s.ready_for(A) and not s.ready_for(B) and s.idle
    assert not s.want_embedding(A)  # ready: not again


def test_result_after_image_switch_is_dropped():
    s = PredictionState()
    _ready(s, A)
    assert s.want_prediction("p1", False, True) is Predict.RUN
    assert s.predicting and not s.idle
    assert s.want_embedding(B)  # the user switches image while it predicts
    assert not s.result_is_current(A, MODEL, MODEL)
    assert not s.prediction_done()
    assert s.embedded(B, MODEL, MODEL, B) is Embed.READY
    assert s.ready_for(B) and s.result_is_current(B, MODEL, MODEL)


def test_embedding_finished_after_the_user_moved_on_embeds_the_new_plane():
    s = PredictionState()
    assert s.want_embedding(A)
    assert s.embedded(A, MODEL, MODEL, B) is Embed.MOVED  # now on B
    assert not s.ready and s.want_embedding(B)


def test_model_swap_during_embedding_drops_the_old_models_embedding():
    s = PredictionState()
    assert s.want_embedding(A)
    s.forget_embeddings()  # the model is swapped on the compute thread
    assert s.want_embedding(A)  # the new model embeds it again
    assert s.embedded(A, MODEL, NEW_MODEL, A) is Embed.STALE  # the old one comes back
    assert not s.ready and not s.idle
    assert s.embedded(A, NEW_MODEL, NEW_MODEL, A) is Embed.READY
    assert not s.result_is_current(A, MODEL, NEW_MODEL)  # a prediction of the old model


def test_a_failed_embedding_is_tried_again_later():
    s = PredictionState()
    assert s.want_embedding(A)
    s.embedding_failed(B)  # another plane's failure changes nothing
    assert not s.want_embedding(A)
    s.embedding_failed(A)
    assert s.idle and s.want_embedding(A)


def test_edits_during_a_prediction_are_predicted_once_it_finishes_never_twice():
    s = PredictionState()
    _ready(s)
    assert s.want_prediction("p1", False, True) is Predict.RUN
    assert s.want_prediction("p1", False, True) is Predict.SKIP  # the same prompts, running
    assert s.want_prediction("p2", False, True) is Predict.LATER
    assert s.want_prediction("p3", False, True) is Predict.LATER  # coalesced
    assert s.prediction_done()  # predict the newest prompts now
    assert s.want_prediction("p3", True, True) is Predict.RUN
    assert not s.prediction_done()
    assert s.want_prediction("p3", True, True) is Predict.SKIP  # shown already
    s.forget_prediction()  # e.g. zoom toggled
    assert s.want_prediction("p3", True, True) is Predict.RUN
    s.prediction_done()
    assert s.want_prediction("p4", True, False) is Predict.CLEAR  # every prompt removed


def test_commit_during_prediction_waits_for_it_on_the_same_plane_only():
    s = PredictionState()
    _ready(s)
    assert s.want_commit(A)  # nothing runs: commit now
    s.want_prediction("p1", False, True)
    assert not s.want_commit(A)  # waits for the mask of the latest prompts
    assert s.want_prediction("p2", False, True) is Predict.LATER
    assert s.prediction_done()
    assert s.want_prediction("p2", False, True) is Predict.RUN
    assert not s.commit_due(A)  # still waiting: another prediction runs
    s.prediction_done()
    assert s.commit_due(A) and not s.commit_due(A)  # once

    s.want_prediction("p3", False, True)
    assert not s.want_commit(A)
    s.prediction_done()
    assert not s.commit_due(B)  # the user moved to another plane: dropped
    assert s.commit_pending is None


def test_a_failed_prediction_or_removed_prompts_cancel_the_waiting_commit():
    s = PredictionState()
    _ready(s)
    s.want_prediction("p1", False, True)
    assert not s.want_commit(A)
    s.prediction_failed()
    s.prediction_done()
    assert not s.commit_due(A)
    s.want_prediction("p1", False, True)  # not skipped after the failure
    assert s.busy
    assert not s.want_commit(A)
    s.prompts_removed()
    s.prediction_done()
    assert not s.commit_due(A)


def test_refine_across_slices_resumes_on_its_own_slice():
    s = PredictionState()
    z1, z2 = ("stack", (1,)), ("stack", (2,))
    s.start_refine(z1, "mask-logits", 7)
    assert s.refine_on(z1) == ("mask-logits", 7)
    assert s.refine_on(z2) is None  # another slice: not there
    s.end_refine(z2)  # prompts removed on another slice: the refinement stays
    assert s.refine_on(z1) == ("mask-logits", 7)
    s.end_refine(z1)
    assert s.refine_on(z1) is None
    s.start_refine(z1, "m", 3)
    s.end_refine()  # every plane
    assert s.refining is None


def test_a_pressed_click_is_taken_once():
    s = PredictionState()
    s.press((1.0, 2.0), 0)
    assert s.take_press() == ((1.0, 2.0), 0)
    assert s.take_press() is None
