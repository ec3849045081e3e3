"""Interactive predictor: embed an image once, then turn prompts into masks quickly.

Coordinates are (x, y) pixels of the original image; the napari (row, col) flip happens at the
napari boundary (:func:`sam_pets.predict.transforms.yx_to_xy`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from sam_pets.data.fsutil import image_key
from sam_pets.model.device import autocast, resolve_precision, select_device
from sam_pets.model.fingerprint import encoder_fingerprint
from sam_pets.model.sam2 import ImageFeatures, Sam2Image
from sam_pets.predict import zoom
from sam_pets.predict.cache import FeatureCache
from sam_pets.predict.transforms import coords_orig_to_input, preprocess, upsample_masks
from sam_pets.predict.zoom import Window


@dataclass
class Prediction:
    """Masks for one prompt set (or K prompt sets when boxes are batched).

    Attributes:
        masks: bool (M, H, W), or (K, M, H, W) for K prompt sets; original image size.
            ``None`` when predicted with ``lazy_masks=True``: then :meth:`mask` upsamples
            each candidate when it is first asked for.
        scores: Predicted IoU (M,) or (K, M).
        low_res_logits: Logits (M, s, s) or (K, M, s, s), clamped to [-32, 32]; feed one
            of them back as ``mask_logits`` to refine.
        object_scores: Object-presence logit, () or (K,); > 0 means "there is an object".
        window: The image region ``(x0, y0, x1, y1)`` (pixels, exclusive ends) that
            ``low_res_logits`` cover when the prediction was zoomed in, or None for the whole
            image; pass it back as ``mask_window`` with those logits. With K prompt sets
            zoomed, a list of K windows.
    """

    masks: np.ndarray | None
    scores: np.ndarray
    low_res_logits: np.ndarray
    object_scores: np.ndarray
    _logits: torch.Tensor | None = field(default=None, repr=False, compare=False)
    _size: tuple[int, int] | None = field(default=None, repr=False, compare=False)
    window: Window | list[Window | None] | None = None

    def best(self) -> int:
        """Index of the candidate with the highest predicted IoU (single prompt set)."""
        return int(np.argmax(self.scores.reshape(-1, self.scores.shape[-1])[0]))

    def mask(self, i: int) -> np.ndarray:
        """Candidate ``i`` of a single prompt set as a bool (H, W) mask at the image's size.

        Upsampling a candidate to a 12 MP photo takes ~15 ms on a CPU, so an interactive
        caller that shows one candidate at a time predicts with ``lazy_masks=True`` and pays
        only for the candidates it shows.
        """
        if self.masks is not None:
            return self.masks[i]
        if self._logits is None or self._size is None:
            raise ValueError("this prediction holds neither masks nor logits")
        if self.window is None:
            return upsample_masks(self._logits[i : i + 1], self._size)[0]
        part = upsample_masks(self._logits[i : i + 1], zoom.window_hw(self.window))[0]
        return zoom.paste(part, self.window, self._size)


# Prompt sets decoded at once by :meth:`ImagePredictor.decode` on a CPU.
DECODE_CHUNK_CPU = 8


class ImagePredictor:
    """Embed images and predict masks from point / box / mask prompts.

    Args:
        model: A :class:`Sam2Image` (weights loaded).
        device: ``"auto"`` (cuda > mps > cpu), or an explicit device.
        precision: ``"auto"`` (bf16 autocast on CUDA, fp32 elsewhere), ``"fp32"`` or ``"bf16"``.
        cache_size: Number of image embeddings kept in memory.
        cache_dir: Optional folder for an on-disk embedding cache.
        fast: Use the inference-only fast decoder (same results up to float rounding).
        zoom: Zoom in on the object by default (see :meth:`predict`); ``predict(zoom=...)``
            decides per call.
        zoom_margin: Margin of a zoom crop on each side, as a fraction of the object's side.
        zoom_candidates: For a zoomed first click, zoom in on each of the first pass's three
            candidates and keep the one whose zoomed prediction has the best predicted IoU
            (up to three crop embeddings). False zooms in on the candidate the first pass
            ranks best (one crop embedding). None (the default): on for models whose
            embedding is cheap, those zoomed by default (input under 1024 px, such as the
            built-in model), off for Meta's 1024-px checkpoints, where each crop embedding
            costs a second or more on a CPU. On the held-out pets it lifts the built-in
            model's one-click mIoU from 0.790 to 0.8015 (``benchmarks/bench_click_candidates.py``;
            on 150 training pets 0.789 to 0.813) for two more crop embeddings (75-90 ms
            on a 2-core CPU, ``benchmarks/bench_zoom.py``).
        first_click_window: For a zoomed first click, look for the object in a square window
            around the click whose side is this fraction of the image's longer side, instead
            of the whole image (0, the default: the whole image). For small objects (windows
            on a facade photo, cells) that the whole image shows in one or two embedding
            cells: on 10 facade photos it lifted the built-in model's one-click mIoU from
            0.05 to 0.23 at 0.25. Later passes crop around the mask as usual; an empty
            answer in the window falls back to the whole image.
        mask_feedback: Whether a correction click is given the previous prediction's
            low-res mask (SAM 2's practice). The predictor does not act on it: the callers
            that feed masks back read it (the Annotator's session,
            :func:`sam_pets.eval.interactive.simulate_clicks`). None (the default): feed back
            unless zooming in. Zoomed, a correction click is answered from all the clicks
            again, on the whole image and then in its crop: on the 60 held-out pets that
            took the built-in model's NoC@85 from 7.08 to 6.63 and NoC@90 from 8.52 to 7.73.
    """

    def __init__(
        self,
        model: Sam2Image,
        device: str | torch.device | None = "auto",
        precision: str = "auto",
        cache_size: int = 8,
        cache_dir: str | None = None,
        fast: bool = True,
        zoom: bool = False,
        zoom_margin: float = zoom.DEFAULT_MARGIN,
        zoom_candidates: bool | None = None,
        first_click_window: float = 0.0,
        mask_feedback: bool | None = None,
    ) -> None:
        if not (np.isfinite(zoom_margin) and zoom_margin >= 0):
            raise ValueError(f"zoom_margin must be a finite number >= 0, got {zoom_margin}")
        if not (np.isfinite(first_click_window) and 0 <= first_click_window <= 1):
            raise ValueError(
                f"first_click_window must be a fraction in [0, 1], got {first_click_window}"
            )
        self.device = select_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.model = model.to(self.device).eval()
        self.cache = FeatureCache(cache_size, cache_dir)
        self._model_id = self._encoder_id(self.model)
        self.fast = fast
        self.zoom = bool(zoom)
        self.zoom_margin = float(zoom_margin)
        self.zoom_candidates = zoom_candidates
        self.first_click_window = float(first_click_window)
        self.mask_feedback = mask_feedback
        self.crop_cache = FeatureCache(max(cache_size, 4), cache_dir)  # a first click tries 3
        self._features: ImageFeatures | None = None
        self._prepared = None
        self._orig_hw: tuple[int, int] | None = None
        self._image: np.ndarray | None = None  # the image zoom crops read
        self._image_key: str | None = None
        self._crop_prepared: tuple[str, object] | None = None  # (cache key, prepared crop)
        self._lock = threading.RLock()

    @property
    def zoom_candidates(self) -> bool:
        """Whether a zoomed first click tries each candidate (see the class docstring)."""
        if self._zoom_candidates is None:
            return zoom.default_for(self.model)
        return self._zoom_candidates

    @zoom_candidates.setter
    def zoom_candidates(self, value: bool | None) -> None:
        self._zoom_candidates = None if value is None else bool(value)

    @property
    def mask_feedback(self) -> bool:
        """Whether correction clicks get the previous mask (see the class docstring)."""
        return not self.zoom if self._mask_feedback is None else self._mask_feedback

    @mask_feedback.setter
    def mask_feedback(self, value: bool | None) -> None:
        self._mask_feedback = None if value is None else bool(value)

    @property
    def image_size(self) -> int:
        """Side of the model's square input."""
        return self.model.cfg.image_size

    @property
    def is_image_set(self) -> bool:
        """True once :meth:`set_image` has been called."""
        return self._features is not None

    @property
    def orig_hw(self) -> tuple[int, int] | None:
        """(H, W) of the current image."""
        return self._orig_hw

    def _encoder_id(self, model: Sam2Image) -> str:
        return encoder_fingerprint(model) + f"|{self.precision}"

    def set_model(self, model: Sam2Image) -> None:
        """Swap in another model (e.g. after fine-tuning).

        Cached embeddings are kept when the image encoder is unchanged (a decoder-only
        fine-tune), so the current image stays ready; otherwise they are dropped and the
        current image must be set again.
        """
        model = model.to(self.device).eval()
        new_id = self._encoder_id(model)
        with self._lock:
            self.model = model
            self._crop_prepared = None  # prepared with the old decoder's weights
            if new_id == self._model_id:
                if self._features is not None:
                    self._use(self._features, self._orig_hw)
                return
            self._model_id = new_id
            self.cache.clear()
            self.crop_cache.clear()
            self._features = None
            self._prepared = None
            self._orig_hw = None
            self._image = self._image_key = None

    def clear_cache(self) -> None:
        """Forget every cached embedding in memory, of images and of crops."""
        with self._lock:
            self.cache.clear()
            self.clear_crops()

    def clear_crops(self) -> None:
        """Forget the cached crop embeddings in memory."""
        with self._lock:
            self.crop_cache.clear()
            self._crop_prepared = None

    def cached_features(self, image: np.ndarray) -> ImageFeatures | None:
        """Features of ``image`` for the current model if already computed, else None."""
        key = image_key(np.asarray(image)) + "|" + self._model_id
        with self._lock:
            return self.cache.get(key)

    @torch.inference_mode()
    def set_image(self, image: np.ndarray) -> ImageFeatures:
        """Embed ``image`` ((H, W), (H, W, 3) or (H, W, 4); uint8, uint16 or float).

        Returns the features (also kept for :meth:`predict`); a repeated image comes from the
        cache without running the encoder.
        """
        image = np.asarray(image)
        key = image_key(image) + "|" + self._model_id
        with self._lock:
            feats = self.cache.get(key)
            if feats is None:
                feats = self.embed(image)
                self.cache.put(key, feats)
            self._use(feats, image.shape[:2])
            self._image, self._image_key = image, key
            return self._features

    def _use(self, feats: ImageFeatures, orig_hw) -> None:
        self._features = feats.to(self.device)
        self._orig_hw = (int(orig_hw[0]), int(orig_hw[1]))
        self._prepared = None
        if self.fast:
            with torch.inference_mode(), autocast(self.device, self.precision):
                self._prepared = self.model.prepare(self._features)

    @torch.inference_mode()
    def embed(self, image: np.ndarray) -> ImageFeatures:
        """Run the image encoder on one image (no cache)."""
        x = preprocess(image, self.image_size, self.device)
        with autocast(self.device, self.precision):
            feats = self.model.encode_image(self.model.normalize(x))
        return ImageFeatures(*(t.float() for t in feats.tensors()))

    def set_features(
        self,
        features: ImageFeatures,
        orig_hw: tuple[int, int],
        image: np.ndarray | None = None,
    ) -> None:
        """Use precomputed features (e.g. from a cache of the caller's own).

        Zoomed predictions crop ``image`` (the picture the features were computed from);
        without it, :meth:`predict` with zoom raises.
        """
        if image is not None:
            image = np.asarray(image)
            if tuple(image.shape[:2]) != tuple(orig_hw):
                raise ValueError(
                    f"image is {image.shape[:2]}, but the features are of a {orig_hw} image"
                )
        with self._lock:
            self._use(features, orig_hw)
            self._image = image
            self._image_key = None if image is None else image_key(image) + "|" + self._model_id

    def reset_image(self) -> None:
        """Forget the current image (the cache keeps its features)."""
        with self._lock:
            self._features = None
            self._prepared = None
            self._orig_hw = None
            self._image = self._image_key = None

    @torch.inference_mode()
    def predict(
        self,
        points_xy: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        box_xyxy: np.ndarray | None = None,
        mask_logits: np.ndarray | None = None,
        multimask: bool = True,
        return_logits: bool = False,
        lazy_masks: bool = False,
        zoom: bool | None = None,
        mask_window: Window | None = None,
        zoom_candidates: bool | None = None,
    ) -> Prediction:
        """Predict masks for the current image.

        Args:
            points_xy: (N, 2) or (K, N, 2) click positions, (x, y) original-image pixels.
            labels: (N,) or (K, N): 1 positive, 0 negative.
            box_xyxy: (4,) one box or (K, 4) K boxes (one prompt set each), original pixels.
            mask_logits: (s, s), (1, s, s) or (K, 1, s, s) low-res logits from an earlier call.
            multimask: Return 3 candidates (best for a single ambiguous click) instead of 1.
            return_logits: Return float logits at full size instead of boolean masks.
            lazy_masks: Leave ``masks`` as ``None`` and upsample a candidate only when
                :meth:`Prediction.mask` asks for it (single prompt set only).
            zoom: Zoom in on the object (None: the predictor's ``zoom`` setting). With a box,
                the crop around the box (plus ``zoom_margin``) is embedded and predicted on
                alone. With clicks only, the first click is answered on the whole image and
                then again in a crop around that mask; later clicks (given the earlier
                ``mask_logits`` and their ``mask_window``) work in a crop around the current
                mask, re-chosen when the mask reaches its edge or a positive click falls
                outside it. Negative clicks outside the crop are left out; the mask prompt
                is carried into the crop's frame. A zoomed click prediction has one
                candidate. Masks always come back at the image's size; ``window`` of the
                result says which region its low-res logits cover.
            mask_window: The window ``mask_logits`` cover (``Prediction.window`` of the
                prediction they came from); None for the whole image.
            zoom_candidates: For this call, whether a zoomed first click zooms in on each
                candidate (None: the predictor's ``zoom_candidates``). The crop of the
                candidate ranked best is cached either way, so a quick answer with False
                followed by the same click with True embeds no crop twice.

        Points and boxes outside the image are allowed (SAM encodes any position, and an
        interactive caller may click beside the image); front ends that want them refused,
        such as ``sam-pets predict``, check the bounds themselves.

        Returns:
            :class:`Prediction`; batched (leading K) when boxes or points are batched.

        Raises:
            ValueError: badly shaped prompts, or a NaN/inf coordinate.
        """
        with self._lock:
            if self._features is None or self._orig_hw is None:
                raise RuntimeError("call set_image() before predict()")
            if zoom is None:
                zoom = self.zoom
            each = self.zoom_candidates if zoom_candidates is None else bool(zoom_candidates)
            if not zoom:
                if mask_window is not None and not zoom_is_full(mask_window, self._orig_hw):
                    mask_logits = self._carry(mask_logits, mask_window, None)
                return self._predict_in(
                    None,
                    points_xy,
                    labels,
                    box_xyxy,
                    mask_logits,
                    multimask,
                    return_logits,
                    lazy_masks,
                )
            if self._image is None:
                raise RuntimeError(
                    "zoom crops the image: call set_image(), or set_features(..., image=)"
                )
            pts, lab, _ = self._prompt_tensors(points_xy, labels, box_xyxy)  # validates shapes
            k = pts.shape[0] if pts is not None else 1
            if k == 1:
                return self._predict_zoomed(
                    points_xy,
                    labels,
                    box_xyxy,
                    mask_logits,
                    mask_window,
                    multimask,
                    return_logits,
                    lazy_masks,
                    each,
                )
            if lazy_masks:
                raise ValueError("lazy_masks=True takes a single prompt set and boolean masks")
            parts = [
                self._predict_zoomed(
                    *_prompt_set(points_xy, labels, box_xyxy, mask_logits, mask_window, i),
                    multimask,
                    return_logits,
                    False,
                    each,
                )
                for i in range(k)
            ]
            return Prediction(
                np.stack([p.masks for p in parts]),
                np.stack([p.scores for p in parts]),
                np.stack([p.low_res_logits for p in parts]),
                np.stack([p.object_scores for p in parts]),
                window=[p.window for p in parts],
            )

    @torch.inference_mode()
    def decode(
        self,
        points_xy: np.ndarray,
        labels: np.ndarray,
        mask_logits: np.ndarray | torch.Tensor | None = None,
        multimask: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw decoder outputs for K point prompt sets on the whole current image.

        For callers that post-process many masks themselves (e.g. the automatic mask
        generator): nothing is upsampled or clamped.

        Args:
            points_xy: (K, N, 2) click positions, original-image pixels.
            labels: (K, N) click labels.
            mask_logits: Optional (K, 1, s, s) low-res logits as a mask prompt.
            multimask: Three candidates per prompt set instead of one.

        Returns:
            ``(logits, iou)``: float32 (K, M, s, s) low-res logits and (K, M) predicted IoU.
        """
        with self._lock:
            if self._features is None:
                raise RuntimeError("call set_image() before decode()")
            pts, lab, _ = self._prompt_tensors(points_xy, labels, None)
            mask_in = None
            if mask_logits is not None:
                mask_in = self._mask_tensor(torch.as_tensor(mask_logits).cpu(), pts.shape[0])
            # on a CPU the decoder's per-prompt cost grows with the batch (cache): 8 at a
            # time ran 1.8x faster per prompt than 64 (2-core Xeon, sam2.1 tiny)
            step = DECODE_CHUNK_CPU if self.device.type == "cpu" else len(pts)
            logits, iou = [], []
            for i in range(0, len(pts), max(step, 1)):
                m = None if mask_in is None else mask_in[i : i + step]
                with autocast(self.device, self.precision):
                    if self._prepared is not None:
                        out = self.model.decode_prepared(
                            self._prepared, pts[i : i + step], lab[i : i + step], m, multimask
                        )
                    else:
                        out = self.model.decode(
                            self._features, pts[i : i + step], lab[i : i + step], m, multimask
                        )
                logits.append(out.logits.float())
                iou.append(out.iou.float())
            return torch.cat(logits), torch.cat(iou)

    # -- zoom -------------------------------------------------------------------------------
    def _predict_zoomed(
        self,
        points_xy,
        labels,
        box_xyxy,
        mask_logits,
        mask_window,
        multimask,
        return_logits,
        lazy_masks,
        each_candidate,
    ) -> Prediction:
        """One prompt set, zoomed (see :meth:`predict`)."""
        hw, margin = self._orig_hw, self.zoom_margin
        pts = None if points_xy is None else np.asarray(points_xy, np.float32).reshape(-1, 2)
        lab = None if labels is None else np.asarray(labels).reshape(-1)
        positive = pts[lab == 1] if pts is not None else np.zeros((0, 2), np.float32)
        if mask_logits is not None:
            mask_logits = np.asarray(mask_logits, np.float32).reshape(
                1, 1, *np.shape(mask_logits)[-2:]
            )
        if box_xyxy is not None:
            box = np.asarray(box_xyxy, np.float32).reshape(4)
            window = zoom.window_around(_union(box, positive), hw, margin)
            mask_in = self._carry(mask_logits, mask_window, window)
            return self._predict_in(
                window, pts, lab, box, mask_in, multimask, return_logits, lazy_masks
            )
        if pts is None:  # a mask prompt alone: predict where it is
            window = mask_window
            return self._predict_in(
                window, None, None, None, mask_logits, multimask, return_logits, lazy_masks
            )
        out = (return_logits, lazy_masks)
        if mask_logits is not None:  # a later click: the crop of the mask so far
            window = self._click_window(mask_logits, mask_window, mask_window, positive)
            return self._crop_pass(window, mask_logits, mask_window, pts, lab, *out)
        # a first click: find the object (whole image or a window), then predict in its crop
        start, first = self._first_pass(pts, lab, positive, multimask)
        candidates = first.low_res_logits[:, None, None]  # (M, 1, 1, s, s)
        if not (each_candidate and len(first.scores) > 1):
            candidates = candidates[first.best() : first.best() + 1]
        # several trials: only the kept one's mask is upsampled to the image
        lazy = lazy_masks or (len(candidates) > 1 and not return_logits)
        trials = []
        for prev in candidates:
            window = self._click_window(prev, start, None, positive)
            if window is None and len(candidates) == 1:  # no crop: the whole image's answer
                return self._predict_in(None, pts, lab, None, None, multimask, *out)
            trials.append(self._crop_pass(window, prev, start, pts, lab, return_logits, lazy))
        # with zoom_candidates, each candidate zoomed in on; the one scored best there
        best = max(trials, key=lambda t: float(t.scores[0]))
        if lazy and not lazy_masks:
            best.masks = best.mask(0)[None]
        return best

    def _crop_pass(self, window, prev, prev_window, pts, lab, return_logits, lazy_masks):
        """The clicks inside ``window`` (None: the image), with ``prev`` carried into it."""
        keep = zoom.inside(pts, window) if window is not None else np.ones(len(pts), bool)
        mask_in = self._carry(prev, prev_window, window)
        return self._predict_in(
            window, pts[keep], lab[keep], None, mask_in, False, return_logits, lazy_masks
        )

    def _first_pass(self, pts, lab, positive, multimask) -> tuple[Window | None, Prediction]:
        """A first click's pass: in the ``first_click_window`` around it, or the whole image.

        An empty answer in the window is dropped for the whole image's. An answer that
        reaches the window's edge is kept: a person who sets the window expects small
        objects, and an object larger than it grows as later clicks move the crop.
        """
        start = self._first_window(positive)
        if start is not None:
            inside = zoom.inside(pts, start)
            first = self._predict_in(
                start, pts[inside], lab[inside], None, None, multimask, False, True
            )
            if zoom.logits_box(first.low_res_logits[first.best()], start) is not None:
                return start, first
        return None, self._predict_in(None, pts, lab, None, None, multimask, False, True)

    def _first_window(self, positive: np.ndarray) -> Window | None:
        """Where a first click looks for its object (None: the whole image).

        A square around the first positive click, ``first_click_window`` of the image's
        longer side (at least ``zoom.MIN_SIDE``), shifted to lie inside the image.
        """
        if self.first_click_window <= 0 or not len(positive):
            return None
        hw = self._orig_hw
        side = max(int(round(self.first_click_window * max(hw))), zoom.MIN_SIDE)
        x0, y0 = (int(np.floor(float(v) - side / 2 + 0.5)) for v in positive[0])
        window = zoom.window_around(np.array([x0, y0, x0 + side - 1, y0 + side - 1]), hw, 0.0)
        return None if zoom_is_full(window, hw) else window

    def _click_window(self, prev, prev_window, mask_window, positive) -> Window | None:
        """The crop for a click pass (None: the whole image).

        The previous window is kept while the mask and the positive clicks stay clear of its
        inner edges; otherwise a new one is chosen around them.
        """
        hw = self._orig_hw
        full = (0, 0, hw[1], hw[0])
        box = zoom.logits_box(prev[0, 0], prev_window or full)
        region = _union(box, positive)
        if region is None:
            return None
        if mask_window is not None and not zoom_is_full(mask_window, hw):
            held = zoom.inside(positive, mask_window).all()
            if held and not zoom.touches_inner_edge(region, mask_window, hw):
                return tuple(int(v) for v in mask_window)
        window = zoom.window_around(region, hw, self.zoom_margin)
        return None if zoom_is_full(window, hw) else window

    def _carry(self, mask_logits, src: Window | None, dst: Window | None):
        """Low-res logits covering ``src`` resampled to cover ``dst`` (None: whole image)."""
        if mask_logits is None:
            return None
        hw = self._orig_hw
        full = (0, 0, hw[1], hw[0])
        src, dst = tuple(src or full), tuple(dst or full)
        if src == dst:
            return mask_logits
        t = torch.as_tensor(np.asarray(mask_logits, np.float32))
        return zoom.resample_logits(t, src, dst).numpy()

    def crop_features(self, window: Window) -> tuple[ImageFeatures, object]:
        """Features (and the fast decoder's prepared state) of a crop of the current image.

        Cached like image embeddings, keyed by the image, the window and the model.
        """
        key = f"{self._image_key}|crop{tuple(int(v) for v in window)}"
        if self._crop_prepared is not None and self._crop_prepared[0] == key:
            return self._crop_prepared[1]
        feats = self.crop_cache.get(key)
        if feats is None:
            feats = self.embed(zoom.crop(self._image, window))
            self.crop_cache.put(key, feats)
        feats = feats.to(self.device)
        prepared = None
        if self.fast:
            with autocast(self.device, self.precision):
                prepared = self.model.prepare(feats)
        self._crop_prepared = (key, (feats, prepared))
        return feats, prepared

    # -- decoding ---------------------------------------------------------------------------
    def _predict_in(
        self,
        window: Window | None,
        points_xy,
        labels,
        box_xyxy,
        mask_logits,
        multimask: bool,
        return_logits: bool,
        lazy_masks: bool,
    ) -> Prediction:
        """Decode on the whole image (``window`` None) or on a crop, masks at image size."""
        hw = self._orig_hw
        if window is not None and zoom_is_full(window, hw):
            window = None
        if window is None:
            feats, prepared, frame = self._features, self._prepared, hw
        else:
            (feats, prepared), frame = self.crop_features(window), zoom.window_hw(window)
            if points_xy is not None:
                points_xy = zoom.points_into(points_xy, window)
            if box_xyxy is not None:
                box_xyxy = zoom.box_into(box_xyxy, window)
            if points_xy is not None and not len(points_xy):
                points_xy = labels = None
        pts, lab, batched = self._prompt_tensors(points_xy, labels, box_xyxy, frame)
        mask_in = self._mask_tensor(mask_logits, pts.shape[0] if pts is not None else 1)
        with autocast(self.device, self.precision):
            if prepared is not None:
                out = self.model.decode_prepared(prepared, pts, lab, mask_in, multimask)
            else:
                out = self.model.decode(feats, pts, lab, mask_in, multimask)
        logits = out.logits.float()
        if lazy_masks:
            if batched or return_logits:
                raise ValueError("lazy_masks=True takes a single prompt set and boolean masks")
            masks = None
        elif return_logits:
            full = F.interpolate(logits, frame, mode="bilinear", align_corners=False)
            masks = full.cpu().numpy()
            if window is not None:
                masks = zoom.paste(masks, window, hw, fill=np.float32(-32.0))
        else:
            masks = upsample_masks(logits, frame)
            if window is not None:
                masks = zoom.paste(masks, window, hw)
        res = Prediction(
            masks,
            out.iou.float().cpu().numpy(),
            logits.clamp(-32.0, 32.0).cpu().numpy(),
            out.object_score.float()[:, 0].cpu().numpy(),
            window=window,
        )
        if not batched:
            res = Prediction(
                None if masks is None else res.masks[0],
                res.scores[0],
                res.low_res_logits[0],
                res.object_scores[0],
                logits[0] if masks is None else None,
                hw if masks is None else None,
                window=window,
            )
        return res

    def _prompt_tensors(self, points_xy, labels, box_xyxy, frame_hw=None):
        """Build (K, N, 2) input-frame coords and (K, N) labels; boxes first as labels 2/3.

        ``frame_hw`` is the size of the frame the coordinates are in (the image by default).
        """
        dev, hw, size = self.device, frame_hw or self._orig_hw, self.image_size
        batched = False
        pts = lab = None
        if points_xy is not None:
            p = torch.as_tensor(_finite(points_xy, "points_xy"), device=dev)
            if labels is None:
                raise ValueError("labels are required with points_xy")
            lab = torch.as_tensor(np.asarray(labels), dtype=torch.int32, device=dev)
            if p.ndim == 2:
                p, lab = p[None], lab[None]
            else:
                batched = True
            if p.shape[-1] != 2 or lab.shape != p.shape[:2]:
                raise ValueError(
                    f"points_xy must be (N, 2) or (K, N, 2) with labels (N,) or (K, N); "
                    f"got {tuple(p.shape)} and {tuple(lab.shape)}"
                )
            pts = coords_orig_to_input(p, hw, size)
        if box_xyxy is not None:
            b = torch.as_tensor(_finite(box_xyxy, "box_xyxy"), device=dev)
            if b.ndim == 1:
                b = b[None]
            elif b.shape[0] > 1 or batched:
                batched = True
            if b.shape[-1] != 4:
                raise ValueError(f"box_xyxy must be (4,) or (K, 4), got {tuple(b.shape)}")
            corners = coords_orig_to_input(b.reshape(-1, 2, 2), hw, size)  # (K, 2, 2)
            corner_lab = torch.tensor([[2, 3]], dtype=torch.int32, device=dev).expand(len(b), 2)
            if pts is not None:
                if pts.shape[0] != corners.shape[0]:
                    pts, lab = pts.expand(len(b), -1, -1), lab.expand(len(b), -1)
                pts = torch.cat([corners, pts], dim=1)
                lab = torch.cat([corner_lab, lab], dim=1)
            else:
                pts, lab = corners, corner_lab
        return pts, lab, batched

    def _mask_tensor(self, mask_logits, k: int) -> torch.Tensor | None:
        if mask_logits is None:
            return None
        m = torch.as_tensor(np.asarray(mask_logits, dtype=np.float32), device=self.device)
        s = self.model.cfg.mask_size
        if m.shape[-2:] != (s, s):
            raise ValueError(f"mask_logits must be {s}x{s} low-res logits, got {tuple(m.shape)}")
        while m.ndim < 4:
            m = m[None]
        return m.expand(k, -1, -1, -1) if m.shape[0] == 1 and k > 1 else m


def zoom_is_full(window: Window | None, size_hw: tuple[int, int]) -> bool:
    """True when ``window`` is None or the whole image."""
    return zoom.is_full(window, size_hw)


def _union(box: np.ndarray | None, points_xy: np.ndarray) -> np.ndarray | None:
    """Inclusive box around a box (or None) and (N, 2) points; None when both are empty."""
    parts = [] if box is None else [np.asarray(box, np.float32).reshape(2, 2)]
    if len(points_xy):
        parts.append(np.asarray(points_xy, np.float32).reshape(-1, 2))
    if not parts:
        return None
    p = np.concatenate(parts)
    return np.concatenate([p.min(0), p.max(0)])


def _prompt_set(points_xy, labels, box_xyxy, mask_logits, mask_window, i: int):
    """Prompt set ``i`` of batched prompts (arguments of ``_predict_zoomed``)."""
    pts = lab = box = mask = None
    if points_xy is not None:
        p, lb = np.asarray(points_xy), np.asarray(labels)
        pts, lab = (p[i], lb[i]) if p.ndim == 3 else (p, lb)
    if box_xyxy is not None:
        b = np.asarray(box_xyxy).reshape(-1, 4)
        box = b[i] if len(b) > 1 else b[0]
    if mask_logits is not None:
        m = np.asarray(mask_logits)
        mask = m[i] if m.ndim == 4 and m.shape[0] > 1 else m
    win = mask_window[i] if isinstance(mask_window, list) else mask_window
    return pts, lab, box, mask, win


def _finite(coords, name: str) -> np.ndarray:
    """``coords`` as float32, refusing NaN and inf (they would silently give an empty mask)."""
    a = np.asarray(coords, dtype=np.float32)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} must be finite numbers, got {a.tolist()}")
    return a
