"""Annotation state of one image plane, free of Qt and napari (so it is easy to test).

A :class:`PromptSession` holds the prompts of the object being annotated, asks the predictor
for candidate masks, and commits the chosen mask into a label array with an undo history.
Coordinates are (x, y) pixels of the plane (napari's (row, col) is flipped before this).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Candidates:
    """The current prediction for the object being annotated.

    The M candidates are in order, best first (M = 3 for a single ambiguous click, else 1).
    Each bool (H, W) mask is made from the low-res logits the first time it is shown: on a
    12 MP photo that is ~15 ms per candidate, so a click pays only for the one it shows.

    Attributes:
        scores: (M,) predicted IoU.
        logits: (M, s, s) low-res logits (fed back with the next prompt).
        object_score: Object-presence logit (> 0: the model sees an object).
        source: ``source(k)`` makes candidate k's mask.
        index: The selected candidate.
        window: The image region the logits cover when the prediction zoomed in (None:
            the whole plane).
    """

    scores: np.ndarray
    logits: np.ndarray
    object_score: float
    source: Callable[[int], np.ndarray]
    index: int = 0
    window: tuple[int, int, int, int] | None = None
    _made: dict = field(default_factory=dict, repr=False)

    def made(self, k: int) -> bool:
        """Whether candidate k's mask is made already (showing it costs nothing)."""
        return k in self._made

    def candidate(self, k: int) -> np.ndarray:
        """Candidate k's mask (H, W) bool, made once."""
        if k not in self._made:
            self._made[k] = self.source(k)
        return self._made[k]

    @property
    def mask(self) -> np.ndarray:
        """The selected mask (H, W) bool."""
        return self.candidate(self.index)

    @property
    def masks(self) -> tuple[np.ndarray, ...]:
        """All M masks (makes the ones not shown yet)."""
        return tuple(self.candidate(k) for k in range(len(self.scores)))

    def cycle(self) -> int:
        """Select the next candidate; returns its index."""
        self.index = (self.index + 1) % len(self.scores)
        return self.index


class LabelOverflow(ValueError):
    """The next label id does not fit the label array's dtype."""


@dataclass
class _Commit:
    label: int
    plane: tuple
    shape: tuple
    flat_index: np.ndarray
    old_values: np.ndarray
    new_values: np.ndarray
    owner: object = None  # which label array it went into (the caller's key)


@dataclass
class PromptSession:
    """Prompts and candidates of one object on one plane, plus commit / undo.

    Attributes:
        points_xy: (N, 2) click positions; labels (N,) 1 positive / 0 negative.
        box_xyxy: Optional (4,) box.
        mask_prompt: Optional (s, s) logits used as mask prompt (refining a committed label).
    """

    points_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int32))
    box_xyxy: np.ndarray | None = None
    mask_prompt: np.ndarray | None = None
    candidates: Candidates | None = None
    refining_label: int | None = None
    _last: tuple | None = None  # (points, labels, box) of the previous prediction
    _history: list[_Commit] = field(default_factory=list)

    def set_prompts(self, points_xy, labels, box_xyxy=None) -> None:
        """Replace the prompts (from the napari layers)."""
        self.points_xy = np.asarray(points_xy, np.float32).reshape(-1, 2)
        self.labels = np.asarray(labels, np.int32).reshape(-1)
        self.box_xyxy = None if box_xyxy is None else np.asarray(box_xyxy, np.float32)

    @property
    def has_prompt(self) -> bool:
        """True if there is anything to predict from."""
        return len(self.points_xy) > 0 or self.box_xyxy is not None or self.mask_prompt is not None

    def predict(self, predictor) -> Candidates | None:
        """Predict candidates for the current prompts with an ``ImagePredictor``.

        One click alone gives 3 candidates (best first selected). When the prompts extend the
        previous ones by added clicks, the previous low-res logits are the mask prompt if the
        predictor's ``mask_feedback`` says so (a mask given as a prompt always is).
        """
        result = None
        for step in self.predict_steps(predictor, quick=False):
            result = step
        return result

    def predict_steps(self, predictor, stale: Callable[[], bool] | None = None, quick: bool = True):
        """:meth:`predict` as a generator of its answers, quick first (a compute thread's job).

        A zoomed first click whose predictor zooms in on each candidate
        (``zoom_candidates``) yields twice: the crop of the candidate the whole image ranks
        best (one crop embedding), then the best of all three crops (the first one comes
        from the cache). Every other prompt yields once. ``stale()`` True after the quick
        answer (newer prompts are waiting) skips the rest. ``quick=False`` skips the quick
        answer (batch callers, which show nothing). Each answer is also kept in
        :attr:`candidates`; the generator's return value is the last one.
        """
        if not self.has_prompt:
            self.candidates, self._last = None, None
            yield None
            return None
        mask_in = self._mask_input(getattr(predictor, "mask_feedback", True))
        window = None if mask_in is None or self.mask_prompt is not None else self.candidates.window
        single_click = len(self.points_xy) == 1 and self.box_xyxy is None and mask_in is None
        passes = [None]
        if (
            quick
            and single_click
            and getattr(predictor, "zoom", False)
            and getattr(predictor, "zoom_candidates", False)
        ):
            passes = [False, True]
        for i, each in enumerate(passes):
            if i and stale is not None and stale():
                break
            pred = predictor.predict(
                self.points_xy if len(self.points_xy) else None,
                self.labels if len(self.labels) else None,
                self.box_xyxy,
                mask_in,
                multimask=single_click,
                lazy_masks=True,
                **({} if window is None else {"mask_window": window}),
                **({} if each is None else {"zoom_candidates": each}),
            )
            order = np.argsort(-pred.scores) if single_click else np.arange(len(pred.scores))
            self.candidates = Candidates(
                pred.scores[order],
                pred.low_res_logits[order],
                float(pred.object_scores),
                lambda k, pred=pred, order=order: pred.mask(int(order[k])),
                window=getattr(pred, "window", None),
            )
            self.candidates.candidate(0)  # the shown one, made here (off the GUI thread)
            self._last = (self.points_xy.copy(), self.labels.copy(), self._box_key())
            yield self.candidates
        return self.candidates

    def prompt_key(self) -> tuple:
        """Identity of the current prompts: equal keys give the same prediction."""
        mask = None if self.mask_prompt is None else id(self.mask_prompt)
        return (self.points_xy.tobytes(), self.labels.tobytes(), self._box_key(), mask)

    def _box_key(self):
        return None if self.box_xyxy is None else tuple(np.round(self.box_xyxy, 3))

    def _mask_input(self, feedback: bool = True) -> np.ndarray | None:
        if self.mask_prompt is not None:
            return self.mask_prompt[None]
        if not feedback or self.candidates is None or self._last is None:
            return None
        pts, lab, box = self._last
        n = len(pts)
        grew = (
            len(self.points_xy) > n > 0
            and np.array_equal(self.points_xy[:n], pts)
            and np.array_equal(self.labels[:n], lab)
            and self._box_key() == box
        )
        if not grew:
            return None
        return self.candidates.logits[self.candidates.index][None]

    def auto_label(self, point_xy) -> int:
        """Polarity rule of auto mode: a click on the current mask removes (0), off it adds (1)."""
        if self.candidates is None:
            return 1
        x, y = int(round(float(point_xy[0]))), int(round(float(point_xy[1])))
        m = self.candidates.mask
        inside = 0 <= y < m.shape[0] and 0 <= x < m.shape[1] and bool(m[y, x])
        return 0 if inside else 1

    def clear(self) -> None:
        """Forget prompts and candidates (not the commit history)."""
        self.set_prompts(np.zeros((0, 2)), np.zeros((0,)))
        self.mask_prompt = None
        self.candidates = None
        self.refining_label = None
        self._last = None

    def commit(
        self, labels: np.ndarray, plane: tuple = (), overwrite: bool = False, owner=None
    ) -> int:
        """Write the selected candidate into ``labels[plane]`` under a new id (or the refined one).

        Args:
            labels: The whole label array (modified in place).
            plane: Index of the 2D plane inside ``labels`` (``()`` for 2D).
            overwrite: Let the new object replace pixels of other objects.
            owner: The caller's key for ``labels`` (e.g. its layer), kept with the undo step.

        Returns:
            The label id written; 0 if nothing would change (no mask, or a mask that lies
            wholly on other objects without ``overwrite``): then the prompts are kept.
        """
        if self.candidates is None or not self.candidates.mask.any():
            return 0
        view = labels[plane] if plane else labels
        mask = self.candidates.mask
        if mask.shape != view.shape:
            raise ValueError(f"mask {mask.shape} does not fit the label plane {view.shape}")
        label = self.refining_label or int(labels.max()) + 1
        if label > np.iinfo(labels.dtype).max:
            raise LabelOverflow(f"label id {label} does not fit the labels dtype {labels.dtype}")
        new = view.copy()
        if self.refining_label:
            new[new == label] = 0  # the refined object is replaced, not extended
        target = mask if overwrite else mask & ((new == 0) | (new == label))
        new[target] = label
        idx = np.flatnonzero(new != view)
        if len(idx) == 0:
            return 0
        old, written = view.ravel()[idx].copy(), new.ravel()[idx]
        self._history.append(_Commit(label, plane, view.shape, idx, old, written, owner))
        _assign(view, idx, written)
        self.clear()
        return label

    @property
    def can_undo(self) -> bool:
        """True if there is a commit to undo."""
        return bool(self._history)

    @property
    def last_owner(self):
        """``owner`` of the commit :meth:`undo` would undo (None without one)."""
        return self._history[-1].owner if self._history else None

    @property
    def last_plane(self) -> tuple:
        """``plane`` of the commit :meth:`undo` would undo (``()`` without one)."""
        return self._history[-1].plane if self._history else ()

    def drop_last(self) -> None:
        """Forget the last commit without undoing it (its label array is gone)."""
        if self._history:
            self._history.pop()

    def undo(self, labels: np.ndarray) -> int:
        """Undo the last commit in ``labels`` (the array it went into).

        Only pixels that still hold what the commit wrote go back: later edits are kept.
        Returns the label id of the undone commit (0: none).

        Raises:
            ValueError: ``labels`` no longer has the shape it had (the step is dropped).
        """
        if not self._history:
            return 0
        c = self._history.pop()
        view = labels[c.plane] if c.plane else labels
        if view.shape != c.shape:
            raise ValueError(
                f"the labels changed shape since the commit: {c.shape} -> {view.shape}"
            )
        rows, cols = np.unravel_index(c.flat_index, view.shape)
        same = view[rows, cols] == c.new_values
        view[rows[same], cols[same]] = c.old_values[same]
        return c.label

    def start_refine(self, labels_plane: np.ndarray, label: int, mask_size: int) -> None:
        """Begin correcting the committed object ``label``: its mask becomes the mask prompt."""
        mask = labels_plane == label
        if not mask.any():
            raise ValueError(f"label {label} is not on this plane")
        self.clear()
        self.refining_label = int(label)
        self.mask_prompt = mask_to_logits(mask, mask_size)
        ys, xs = np.nonzero(mask)
        self.box_xyxy = np.array([xs.min(), ys.min(), xs.max(), ys.max()], np.float32)


def _assign(view: np.ndarray, flat_index: np.ndarray, values: np.ndarray) -> None:
    """``view.ravel()[flat_index] = values`` that also works for non-contiguous views."""
    rows, cols = np.unravel_index(flat_index, view.shape)
    view[rows, cols] = values


def mask_to_logits(mask: np.ndarray, size: int, scale: float = 8.0) -> np.ndarray:
    """Turn a binary (H, W) mask into (size, size) mask-prompt logits (squash-resized).

    Area-averages the mask onto the low-res grid and maps the coverage p to
    ``scale * (2p - 1)`` (positive inside, negative outside, 0 on the boundary).
    """
    from skimage.transform import resize

    p = resize(mask.astype(np.float32), (size, size), order=1, anti_aliasing=True)
    return (scale * (2.0 * p - 1.0)).astype(np.float32)
