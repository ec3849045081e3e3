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

from sam_pets.model.sam2 import ImageFeatures, Sam2Image
from sam_pets.predict.cache import FeatureCache, encoder_fingerprint, image_key
from sam_pets.predict.device import autocast, resolve_precision, select_device
from sam_pets.predict.transforms import coords_orig_to_input, preprocess, upsample_masks


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
    """

    masks: np.ndarray | None
    scores: np.ndarray
    low_res_logits: np.ndarray
    object_scores: np.ndarray
    _logits: torch.Tensor | None = field(default=None, repr=False, compare=False)
    _size: tuple[int, int] | None = field(default=None, repr=False, compare=False)

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
        return upsample_masks(self._logits[i : i + 1], self._size)[0]


class ImagePredictor:
    """Embed images and predict masks from point / box / mask prompts.

    Args:
        model: A :class:`Sam2Image` (weights loaded).
        device: ``"auto"`` (cuda > mps > cpu), or an explicit device.
        precision: ``"auto"`` (bf16 autocast on CUDA, fp32 elsewhere), ``"fp32"`` or ``"bf16"``.
        cache_size: Number of image embeddings kept in memory.
        cache_dir: Optional folder for an on-disk embedding cache.
        fast: Use the inference-only fast decoder (same results up to float rounding).
    """

    def __init__(
        self,
        model: Sam2Image,
        device: str | torch.device | None = "auto",
        precision: str = "auto",
        cache_size: int = 8,
        cache_dir: str | None = None,
        fast: bool = True,
    ) -> None:
        self.device = select_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.model = model.to(self.device).eval()
        self.cache = FeatureCache(cache_size, cache_dir)
        self._model_id = self._encoder_id(self.model)
        self.fast = fast
        self._features: ImageFeatures | None = None
        self._prepared = None
        self._orig_hw: tuple[int, int] | None = None
        self._lock = threading.RLock()

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
            if new_id == self._model_id:
                if self._features is not None:
                    self._use(self._features, self._orig_hw)
                return
            self._model_id = new_id
            self.cache.clear()
            self._features = None
            self._prepared = None
            self._orig_hw = None

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

    def set_features(self, features: ImageFeatures, orig_hw: tuple[int, int]) -> None:
        """Use precomputed features (e.g. from a cache of the caller's own)."""
        with self._lock:
            self._use(features, orig_hw)

    def reset_image(self) -> None:
        """Forget the current image (the cache keeps its features)."""
        with self._lock:
            self._features = None
            self._prepared = None
            self._orig_hw = None

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
            hw = self._orig_hw
            pts, lab, batched = self._prompt_tensors(points_xy, labels, box_xyxy)
            mask_in = self._mask_tensor(mask_logits, pts.shape[0] if pts is not None else 1)
            with autocast(self.device, self.precision):
                if self._prepared is not None:
                    out = self.model.decode_prepared(self._prepared, pts, lab, mask_in, multimask)
                else:
                    out = self.model.decode(self._features, pts, lab, mask_in, multimask)
            logits = out.logits.float()
            if lazy_masks:
                if batched or return_logits:
                    raise ValueError("lazy_masks=True takes a single prompt set and boolean masks")
                masks = None
            elif return_logits:
                full = F.interpolate(logits, hw, mode="bilinear", align_corners=False)
                masks = full.cpu().numpy()
            else:
                masks = upsample_masks(logits, hw)
            res = Prediction(
                masks,
                out.iou.float().cpu().numpy(),
                logits.clamp(-32.0, 32.0).cpu().numpy(),
                out.object_score.float()[:, 0].cpu().numpy(),
            )
        if not batched:
            res = Prediction(
                None if masks is None else res.masks[0],
                res.scores[0],
                res.low_res_logits[0],
                res.object_scores[0],
                logits[0] if masks is None else None,
                hw if masks is None else None,
            )
        return res

    def _prompt_tensors(self, points_xy, labels, box_xyxy):
        """Build (K, N, 2) input-frame coords and (K, N) labels; boxes first as labels 2/3."""
        dev, hw, size = self.device, self._orig_hw, self.image_size
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


def _finite(coords, name: str) -> np.ndarray:
    """``coords`` as float32, refusing NaN and inf (they would silently give an empty mask)."""
    a = np.asarray(coords, dtype=np.float32)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} must be finite numbers, got {a.tolist()}")
    return a
