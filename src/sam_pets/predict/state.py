"""What the Annotator runs next, and what it drops: its prediction state, free of Qt.

The Annotator embeds an image plane, predicts from prompts and commits masks, all on a
compute thread while the user keeps clicking, switching images and slices, and swapping
models. :class:`PredictionState` holds every flag of that dance and decides, for each event,
what runs next and which late result is stale:

- a plane is embedded once per model (:meth:`want_embedding`, :meth:`embedded`);
- one prediction runs at a time; prompts edited meanwhile are predicted once it finishes
  (:meth:`want_prediction`, :meth:`prediction_done`), the same prompts never twice;
- a result that comes back after the image, plane or model changed is dropped
  (:meth:`result_is_current`);
- a commit asked for while a prediction runs waits for it, on the same plane only
  (:meth:`want_commit`);
- a refinement belongs to its plane and resumes there (:meth:`start_refine`,
  :meth:`refine_on`).

Keys are opaque: a plane key (e.g. ``(image layer id, plane index)``) and a prompt key
(:meth:`~sam_pets.predict.session.PromptSession.prompt_key`). A "model token" is whatever
identifies the predictor in use (the widget passes the predictor object).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


class Embed(Enum):
    """What to do with an embedding that finished."""

    STALE = "stale"  # for another model, or superseded: ignore it
    MOVED = "moved"  # the user is on another plane now: embed that one
    READY = "ready"  # the plane is ready: predict its prompts


class Predict(Enum):
    """What to do with a prediction request."""

    SKIP = "skip"  # these prompts are being (or were) predicted already
    LATER = "later"  # one is running: predict the newest prompts once it finishes
    CLEAR = "clear"  # no prompt left: show no prediction
    RUN = "run"  # start it now


@dataclass
class PredictionState:
    """The Annotator's prediction state machine (see the module docstring).

    Attributes:
        ready_key: The plane whose embedding is in the predictor (None: none usable).
        embedding_key: The plane being embedded (None: no embedding under way).
        busy: A prediction is running.
        dirty: Prompts changed while it ran: predict again when it finishes.
        predicted_key: Prompt key of the running or last finished prediction.
        commit_pending: The plane of a commit waiting for the running prediction.
        refining: ``(plane key, mask prompt, label)`` of the refinement under way.
        pressed: ``(layer coordinates, label)`` of a click pressed but not yet added.
    """

    ready_key: Any = None
    embedding_key: Any = None
    busy: bool = False
    dirty: bool = False
    predicted_key: Any = None
    commit_pending: Any = None
    refining: tuple | None = None
    pressed: tuple | None = None

    # --- public views ---------------------------------------------------------------------
    @property
    def predicting(self) -> bool:
        """A prediction is running."""
        return self.busy

    @property
    def idle(self) -> bool:
        """Nothing runs: no prediction and no embedding under way."""
        return not self.busy and self.embedding_key is None

    @property
    def ready(self) -> bool:
        """Some plane is embedded and prompts can be predicted on it."""
        return self.ready_key is not None

    def ready_for(self, key) -> bool:
        """Prompts on plane ``key`` can be predicted now."""
        return key is not None and self.ready_key == key

    # --- embeddings -----------------------------------------------------------------------
    def want_embedding(self, key) -> bool:
        """Plane ``key`` is current: True if its embedding must start now (it is recorded)."""
        if key is None or key == self.ready_key or key == self.embedding_key:
            return False
        self.embedding_key, self.ready_key = key, None
        return True

    def embedded(self, key, model_token, current_model, current_key) -> Embed:
        """An embedding of ``key`` made with ``model_token`` finished."""
        if model_token is not current_model or key != self.embedding_key:
            return Embed.STALE
        self.embedding_key = None
        if key != current_key:
            return Embed.MOVED
        self.ready_key, self.predicted_key = key, None
        return Embed.READY

    def embedding_failed(self, key) -> None:
        """The embedding of ``key`` failed: a later image switch or model load tries again."""
        if key == self.embedding_key:
            self.embedding_key = None

    def forget_embeddings(self) -> None:
        """The model or the image's pixels changed: no plane is embedded any more.

        A prediction under way is dropped when it comes back (its plane is not ready).
        """
        self.ready_key = self.embedding_key = None

    def forget_prediction(self) -> None:
        """The same prompts must be predicted again (e.g. zoom turned on or off)."""
        self.predicted_key = None

    # --- predictions ----------------------------------------------------------------------
    def want_prediction(self, prompt_key, has_candidates: bool, has_prompt: bool) -> Predict:
        """The prompts (``prompt_key``) changed or were asked for again: what to do."""
        if prompt_key == self.predicted_key and (self.busy or has_candidates):
            return Predict.SKIP
        if self.busy:
            self.dirty = True
            return Predict.LATER
        self.predicted_key = None
        if not has_prompt:
            return Predict.CLEAR
        self.busy, self.predicted_key = True, prompt_key
        return Predict.RUN

    def result_is_current(self, made_for_key, model_token, current_model) -> bool:
        """A prediction made on plane ``made_for_key`` with ``model_token`` may be shown."""
        return made_for_key == self.ready_key and model_token is current_model

    def prediction_failed(self) -> None:
        """The running prediction raised: nothing was predicted and no commit waits."""
        self.predicted_key = None
        self.commit_pending = None

    def prediction_done(self) -> bool:
        """The running prediction finished (shown or not): True to predict again now.

        The prompts were edited while it ran; then call :meth:`commit_due` after starting
        that prediction.
        """
        self.busy = False
        again, self.dirty = self.dirty, False
        return again

    def commit_due(self, current_key) -> bool:
        """True when a commit waited for the prediction that finished and may run now.

        It waits on while another prediction runs, and is dropped when the user moved to
        another image or plane meanwhile.
        """
        if self.busy or self.commit_pending is None:
            return False
        pending, self.commit_pending = self.commit_pending, None
        return pending == current_key

    # --- commits --------------------------------------------------------------------------
    def want_commit(self, current_key) -> bool:
        """The user commits: True to commit now, False when it waits for the prediction."""
        if self.busy and current_key is not None:
            self.commit_pending = current_key
            return False
        self.commit_pending = None
        return True

    def prompts_removed(self) -> None:
        """The prompts a waiting commit was for are gone."""
        self.commit_pending = None

    # --- refinement -----------------------------------------------------------------------
    def start_refine(self, key, mask_prompt, label: int) -> None:
        """A committed label of plane ``key`` is being refined."""
        self.refining = (key, mask_prompt, int(label))

    def refine_on(self, key) -> tuple | None:
        """``(mask prompt, label)`` of the refinement of plane ``key`` (None: none there)."""
        if self.refining is not None and self.refining[0] == key:
            return self.refining[1], self.refining[2]
        return None

    def end_refine(self, key=None) -> None:
        """The refinement of plane ``key`` (any plane with None) was committed or dropped."""
        if self.refining is not None and (key is None or self.refining[0] == key):
            self.refining = None

    # --- clicks ---------------------------------------------------------------------------
    def press(self, coords, label: int) -> None:
        """A click was pressed: its label is decided now, the point added on release."""
        self.pressed = (coords, int(label))

    def take_press(self):
        """The pressed click (and forget it), or None."""
        pressed, self.pressed = self.pressed, None
        return pressed
