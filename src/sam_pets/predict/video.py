"""Propagate objects through a video or a stack with SAM 2's memory: numpy in, numpy out.

    predictor = VideoPredictor(model, frames)          # frames: (T, H, W[, C]) or a sequence
    predictor.add_points(0, obj_id=1, points_xy=[[210, 350]], labels=[1])
    predictor.add_points(0, obj_id=2, box_xyxy=[300, 0, 500, 400])
    for t, obj_ids, logits in predictor.propagate():   # forward from the first prompted frame
        masks = logits > 0                               # (objects, H, W) at the frame's size

Objects are tracked one by one, each with its own memory bank, as SAM 2's video predictor
does; a correction (new clicks on a frame already tracked) makes that frame a conditioning
frame for its object, and propagating again from it updates what follows. Frames are read
lazily (any sequence with ``len`` and indexing: a numpy array, a memory-mapped TIFF, a video
reader), one at a time, and kept in their own dtype until the model's input is made (16-bit
and float stacks are scaled with one range for the whole stack, so intensities stay
comparable between frames). Memory features are stored in bfloat16 on the CPU; ``window``
bounds how many tracked frames keep theirs.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from sam_pets.model.device import autocast, resolve_precision
from sam_pets.model.memory import FrameOutput, Sam2Memory, Tracker


def _stack_range(frames) -> tuple[float, float] | None:
    """One intensity range for a non-uint8 stack held in memory (None: per-frame rules)."""
    if not isinstance(frames, np.ndarray) or frames.dtype == np.uint8 or frames.dtype == bool:
        return None
    lo, hi = float(np.min(frames)), float(np.max(frames))
    if np.issubdtype(frames.dtype, np.floating) and lo >= 0.0 and hi <= 1.0:
        return None
    return lo, hi


def frame_to_input(frame: np.ndarray, size: int, value_range=None) -> torch.Tensor:
    """One frame (H, W), (H, W, 1|3|4) of any dtype -> (1, 3, size, size) float in [0, 1]."""
    from sam_pets.predict.transforms import to_float_rgb

    if value_range is not None:
        lo, hi = value_range
        f = np.asarray(frame, np.float32)
        frame = np.zeros_like(f) if hi <= lo else np.clip((f - lo) / (hi - lo), 0, 1)
    rgb = to_float_rgb(frame)
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)
    return TF.resize(x, [size, size], antialias=True).unsqueeze(0)


@dataclass
class _Object:
    """One tracked object: its prompts and its outputs per frame."""

    points: dict = field(default_factory=dict)  # frame -> (points (1, N, 2) input px, labels)
    masks: dict = field(default_factory=dict)  # frame -> (1, 1, S, S) mask prompt
    outputs: dict = field(default_factory=lambda: {"cond": {}, "non_cond": {}})
    temp: dict = field(default_factory=lambda: {"cond": {}, "non_cond": {}})
    tracked: dict = field(default_factory=dict)  # frame -> reverse (bool)


class VideoPredictor:
    """SAM 2 video / stack predictor (see the module docstring).

    Args:
        model: A :class:`~sam_pets.model.sam2.Sam2Image` whose checkpoint carried video weights.
        frames: (T, H, W), (T, H, W, C) array or any sequence of such frames.
        memory: The video weights (default: built from ``model.extra_state``).
        corrections_as_cond: New prompts on a frame already tracked make it a conditioning
            frame (SAM 2's ``add_all_frames_to_correct_as_cond``), so propagating again
            from it keeps the correction.
        window: Keep memory features of at most this many tracked (non-prompted) frames
            around the last one computed (None: all, as SAM 2).
        cache_frames: Frame embeddings kept (the most recent).
        precision: ``"fp32"`` (``"auto"``: Meta's results, see the parity tests) or
            ``"bf16"`` (autocast). On a CPU with AMX, bf16 tracks a frame about twice as fast
            (most of a frame is memory attention's large matmuls); its masks differ from
            fp32's on about 0.5 % of the pixels, at the mask edges (BENCHMARKS.md).

    Raises:
        ValueError: The model has no (or incomplete) video weights.
    """

    def __init__(
        self,
        model,
        frames: Sequence | np.ndarray,
        memory: Sam2Memory | None = None,
        corrections_as_cond: bool = True,
        window: int | None = None,
        cache_frames: int = 2,
        precision: str = "auto",
        **memory_settings,
    ) -> None:
        if memory is None:
            state = getattr(model, "extra_state", None) or {}
            if not state:
                raise ValueError(
                    f"model {getattr(model.cfg, 'name', '?')} has no video weights "
                    "(memory encoder / attention): load a SAM 2 checkpoint that has them"
                )
            memory = Sam2Memory.from_state(
                state, model.cfg.version, model.cfg.decoder.dim, **memory_settings
            )
        self.model = model.eval()
        self.precision = resolve_precision(
            "fp32" if precision == "auto" else precision, model.device
        )
        self.memory = memory.to(model.device).eval()
        self.tracker = Tracker(model, self.memory)
        self.size = model.cfg.image_size
        if len(frames) == 0:
            raise ValueError("no frames")
        self.frames = frames
        self.num_frames = len(frames)
        first = np.asarray(frames[0])
        self.hw = tuple(int(v) for v in first.shape[:2])
        self._range = _stack_range(frames)
        self.corrections_as_cond = corrections_as_cond
        self.window = window
        self._cache: OrderedDict = OrderedDict()
        self._cache_n = max(1, cache_frames)
        self.objects: dict[int, _Object] = {}

    # -- frames ----------------------------------------------------------------------------
    def _amp(self):
        return autocast(self.model.device, self.precision)

    def _encode(self, t: int, images: torch.Tensor):
        """Embed frame ``t`` from its normalised input (1, 3, S, S) and cache it."""
        with self._amp():
            feats = self.tracker.frame_features(images.to(self.model.device))
        self._cache[t] = feats
        self._cache.move_to_end(t)
        while len(self._cache) > self._cache_n:
            self._cache.popitem(last=False)
        return feats

    def _step(self, frame: int, is_init: bool, o: _Object, reverse: bool, **kwargs):
        """One tracking step of object ``o`` on ``frame``, in the predictor's precision."""
        feats = self._features(frame)
        with self._amp():
            return self.tracker.track_step(
                frame, is_init, feats, o.outputs, self.num_frames, reverse=reverse, **kwargs
            )

    def _features(self, t: int):
        if t in self._cache:
            self._cache.move_to_end(t)
            return self._cache[t]
        if not 0 <= t < self.num_frames:
            raise IndexError(f"frame {t} outside 0..{self.num_frames - 1}")
        frame = np.asarray(self.frames[t])
        if frame.shape[:2] != self.hw:
            raise ValueError(f"frame {t} is {frame.shape[:2]}, the first frame {self.hw}")
        x = frame_to_input(frame, self.size, self._range).to(self.model.device)
        return self._encode(t, self.model.normalize(x))

    def set_frame_input(self, t: int, images: torch.Tensor) -> None:
        """Use this normalised model input (1, 3, S, S) for frame ``t``.

        For callers that preprocess themselves; it stays until evicted from the frame cache.
        """
        self._encode(t, images)

    # -- prompts ---------------------------------------------------------------------------
    @property
    def obj_ids(self) -> list[int]:
        """Ids of the objects, in the order of the results' first axis."""
        return list(self.objects)

    def _obj(self, obj_id: int) -> _Object:
        if obj_id not in self.objects:
            if any(o.tracked for o in self.objects.values()):
                raise RuntimeError(
                    f"cannot add object {obj_id} after tracking started: call reset() first"
                )
            self.objects[obj_id] = _Object()
        return self.objects[obj_id]

    def _to_input(self, xy) -> torch.Tensor:
        h, w = self.hw
        a = torch.as_tensor(np.asarray(xy, np.float32).reshape(1, -1, 2))
        return a / torch.tensor([w, h], dtype=torch.float32) * self.size

    def add_points(
        self,
        frame: int,
        obj_id: int,
        points_xy=None,
        labels=None,
        box_xyxy=None,
        clear: bool = True,
    ) -> tuple[list[int], np.ndarray]:
        """Clicks and/or a box for one object on one frame.

        Args:
            frame: Frame index.
            obj_id: Any int naming the object.
            points_xy: (N, 2) (x, y) frame pixels.
            labels: (N,) 1 positive / 0 negative.
            box_xyxy: (4,) box; it replaces earlier prompts of the object on this frame.
            clear: Replace the object's earlier clicks on this frame (else add to them).

        Returns:
            ``(obj_ids, logits)``: the frame's mask logits of every object, (N, H, W).
        """
        if (points_xy is None) != (labels is None):
            raise ValueError("points_xy and labels must be given together")
        if points_xy is None and box_xyxy is None:
            raise ValueError("give points and labels, a box, or both")
        if box_xyxy is not None and not clear:
            raise ValueError("a box replaces the object's prompts on the frame: use clear=True")
        o = self._obj(obj_id)
        pts = self._to_input(points_xy) if points_xy is not None else torch.zeros(1, 0, 2)
        lab = (
            torch.as_tensor(np.asarray(labels, np.int32).reshape(1, -1))
            if labels is not None
            else torch.zeros(1, 0, dtype=torch.int32)
        )
        if pts.shape[1] != lab.shape[1]:
            raise ValueError(f"{pts.shape[1]} points but {lab.shape[1]} labels")
        if box_xyxy is not None:
            pts = torch.cat([self._to_input(box_xyxy), pts], dim=1)
            lab = torch.cat([torch.tensor([[2, 3]], dtype=torch.int32), lab], dim=1)
        if not clear and frame in o.points:
            p0, l0 = o.points[frame]
            pts, lab = torch.cat([p0, pts], 1), torch.cat([l0, lab], 1)
        o.points[frame] = (pts, lab)
        o.masks.pop(frame, None)
        is_init = frame not in o.tracked
        reverse = False if is_init else o.tracked[frame]
        key = "cond" if is_init or self.corrections_as_cond else "non_cond"
        prev = (
            o.temp[key].get(frame)
            or o.outputs["cond"].get(frame)
            or o.outputs["non_cond"].get(frame)
        )
        prev_logits = None if prev is None else prev.pred_masks.clamp(-32.0, 32.0)
        dev = self.model.device
        out = self._step(
            frame,
            is_init,
            o,
            reverse,
            points=pts.to(dev),
            labels=lab.to(dev),
            run_mem_encoder=False,
            prev_mask_logits=None if prev_logits is None else prev_logits.to(dev),
        )
        o.temp[key][frame] = out
        return self.obj_ids, self._frame_logits(frame, key)

    def add_mask(self, frame: int, obj_id: int, mask: np.ndarray) -> tuple[list[int], np.ndarray]:
        """A mask (H, W) for one object on one frame; it is taken as that frame's answer."""
        m = np.asarray(mask)
        if m.shape != self.hw:
            raise ValueError(f"mask is {m.shape}, frames are {self.hw}")
        o = self._obj(obj_id)
        t = torch.as_tensor(m.astype(bool))[None, None].float()
        if t.shape[-2:] != (self.size, self.size):
            t = F.interpolate(
                t, (self.size, self.size), mode="bilinear", align_corners=False, antialias=True
            )
            t = (t >= 0.5).float()
        o.masks[frame] = t
        o.points.pop(frame, None)
        is_init = frame not in o.tracked
        reverse = False if is_init else o.tracked[frame]
        key = "cond" if is_init or self.corrections_as_cond else "non_cond"
        out = self._step(
            frame, is_init, o, reverse, mask_inputs=t.to(self.model.device), run_mem_encoder=False
        )
        o.temp[key][frame] = out
        return self.obj_ids, self._frame_logits(frame, key)

    def clear_prompts(self, frame: int, obj_id: int) -> None:
        """Forget an object's prompts on a frame (its result there becomes a tracked one)."""
        o = self.objects.get(obj_id)
        if o is None:
            return
        o.points.pop(frame, None)
        o.masks.pop(frame, None)
        o.temp["cond"].pop(frame, None)
        o.temp["non_cond"].pop(frame, None)
        out = o.outputs["cond"].pop(frame, None)
        if out is not None:
            o.outputs["non_cond"][frame] = out
            o.tracked.pop(frame, None)

    def reset(self) -> None:
        """Forget every object, prompt and result (the frame cache stays)."""
        self.objects.clear()

    # -- results ---------------------------------------------------------------------------
    def _frame_logits(self, frame: int, key: str) -> np.ndarray:
        s = self.size // 4
        low = torch.full((len(self.objects), 1, s, s), -1024.0)
        for i, o in enumerate(self.objects.values()):
            out = (
                o.temp[key].get(frame)
                or o.outputs["cond"].get(frame)
                or o.outputs["non_cond"].get(frame)
            )
            if out is not None:
                low[i] = out.pred_masks[0].float().cpu()
        return self._video_res(low)

    def _video_res(self, low: torch.Tensor) -> np.ndarray:
        up = F.interpolate(low.float(), self.hw, mode="bilinear", align_corners=False)
        return up[:, 0].cpu().numpy()

    # -- propagation -----------------------------------------------------------------------
    def _preflight(self) -> None:
        if not self.objects:
            raise RuntimeError("no object has a prompt: add points, a box or a mask first")
        for obj_id, o in self.objects.items():
            for key in ("non_cond", "cond"):
                for t, out in o.temp[key].items():
                    if out.maskmem is None:
                        from_pts = True  # as SAM 2: memories of prompted frames binarised
                        feats = self._features(t)
                        with self._amp():
                            out.maskmem, out.maskmem_pos = self.tracker.encode_memory(
                                feats, out.pred_masks, out.object_score, from_pts
                            )
                    o.outputs[key][t] = out
                o.temp[key].clear()
            if not o.outputs["cond"]:
                raise RuntimeError(f"object {obj_id} has no prompt on any frame")
            for t in o.outputs["cond"]:
                o.outputs["non_cond"].pop(t, None)

    @torch.inference_mode()
    def propagate(
        self, start: int | None = None, reverse: bool = False, max_frames: int | None = None
    ) -> Iterator[tuple[int, list[int], np.ndarray]]:
        """Track every object frame by frame; yields ``(frame, obj_ids, logits (N, H, W))``.

        Args:
            start: First frame (default: the earliest prompted frame of any object).
            reverse: Track backwards (towards frame 0).
            max_frames: Stop after this many frames past ``start``.
        """
        self._preflight()
        if start is None:
            start = min(t for o in self.objects.values() for t in o.outputs["cond"])
        n = self.num_frames if max_frames is None else max_frames
        if reverse:
            end = max(start - n, 0)
            order = range(start, end - 1, -1) if start > 0 else range(0)
        else:
            end = min(start + n, self.num_frames - 1)
            order = range(start, end + 1)
        dev = self.model.device
        for t in order:
            lows = []
            for o in self.objects.values():
                if t in o.outputs["cond"]:
                    lows.append(o.outputs["cond"][t].pred_masks)
                else:
                    out = self._step(t, False, o, reverse, run_mem_encoder=True)
                    out = FrameOutput(
                        out.pred_masks.cpu(),
                        out.obj_ptr,
                        out.object_score,
                        out.maskmem.cpu() if out.maskmem is not None else None,
                        out.maskmem_pos,
                        out.extras,
                    )
                    o.outputs["non_cond"][t] = out
                    lows.append(out.pred_masks)
                o.tracked[t] = reverse
                if self.window is not None:
                    self._forget_far(o, t)
            low = torch.cat([x.float().cpu() for x in lows], 0)
            yield t, self.obj_ids, self._video_res(low)
        del dev

    def propagate_both(self, start: int | None = None):
        """Forward from ``start`` (default: the first prompted frame), then backward."""
        if not self.objects:
            raise RuntimeError("no object has a prompt: add points, a box or a mask first")
        yield from self.propagate(start)
        if start is None:
            start = min(t for o in self.objects.values() for t in o.outputs["cond"])
        yield from self.propagate(start, reverse=True)

    def object_scores(self, frame: int) -> np.ndarray:
        """Object-presence logits (N,) of the stored results on ``frame`` (NaN: none)."""
        out = []
        for o in self.objects.values():
            r = o.outputs["cond"].get(frame) or o.outputs["non_cond"].get(frame)
            out.append(np.nan if r is None else float(r.object_score.flatten()[0]))
        return np.asarray(out, np.float32)

    def _forget_far(self, o: _Object, t: int) -> None:
        w = self.window
        for f, out in o.outputs["non_cond"].items():
            if abs(f - t) > w and out.maskmem is not None:
                out.maskmem = out.maskmem_pos = None
