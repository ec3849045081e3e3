"""Segment everything: masks for every object in an image from a grid of point prompts.

The automatic mask generator of SAM, with the parameters (names and defaults) of Meta's
``SAM2AutomaticMaskGenerator``: a grid of single positive clicks over the image (and over
overlapping crops of it, if asked), each answered with three candidates; candidates are kept
when their predicted IoU and their stability (the IoU between the mask thresholded a little
above and a little below its cut-off) are high enough, duplicates are removed by box NMS
within each crop and then across crops, and masks that touch a crop's inner edge are dropped.

It differs from Meta's generator only in cost, not in result: the point batches go through
the fast decoder, and a candidate is upsampled only where its low-res logits can reach the
stability cut-offs (a bilinear value is a convex combination of its four low-res neighbours,
so outside the box of cells above ``mask_threshold - stability_score_offset`` it is below
both cut-offs). Masks are kept as a window plus the mask inside it, never as a full-size array
per candidate. ``min_mask_region_area`` removes holes and islands smaller than that many image
pixels from the kept masks and re-runs the box NMS, as the SAM 1 generator did (Meta's SAM 2
generator hands the area to a CUDA hole filler working on the 256 x 256 logits, which CPU
installs skip).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Generator, Sequence
from dataclasses import asdict, dataclass, field, fields
from itertools import product

import numpy as np
import torch
from scipy import ndimage
from torchvision.ops import batched_nms

from sam_pets.predict.predictor import ImagePredictor
from sam_pets.predict.transforms import _linear_taps, to_float_rgb, upsample_masks
from sam_pets.progress import Progress

Box = tuple[int, int, int, int]


@dataclass
class EverythingParams:
    """Parameters of the automatic mask generator (Meta's names and defaults).

    Attributes:
        points_per_side: Clicks per side of the grid (``points_per_side ** 2`` in all) on the
            whole image; ``None`` when ``point_grids`` is given.
        points_per_batch: Clicks decoded at once.
        pred_iou_thresh: Keep candidates whose predicted IoU is above this (0 keeps all).
        stability_score_thresh: Keep candidates whose stability score is at least this.
        stability_score_offset: Shift of the cut-off for the stability score, in logits.
        mask_threshold: Logit cut-off of a mask.
        box_nms_thresh: Box IoU above which a lower-scored mask of the same crop is dropped.
        crop_n_layers: Layers of crops run again (layer i has ``(2**i)**2`` crops); 0: none.
        crop_nms_thresh: Box IoU of the NMS across crops (smaller crops win).
        crop_overlap_ratio: Overlap of the first layer's crops, as a share of the short side.
        crop_n_points_downscale_factor: Layer i has ``points_per_side / factor**i`` per side.
        point_grids: Explicit grids per layer, (N, 2) points in [0, 1]; exclusive with
            ``points_per_side``.
        min_mask_region_area: Remove holes and islands smaller than this (image pixels).
        multimask_output: Three candidates per click (else one).
        use_m2m: Refine each candidate once more with its own logits as mask prompt.
    """

    points_per_side: int | None = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.8
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    mask_threshold: float = 0.0
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    crop_nms_thresh: float = 0.7
    crop_overlap_ratio: float = 512 / 1500
    crop_n_points_downscale_factor: int = 1
    point_grids: list | None = None
    min_mask_region_area: int = 0
    multimask_output: bool = True
    use_m2m: bool = False

    def __post_init__(self) -> None:
        self._check_types()
        if (self.points_per_side is None) == (self.point_grids is None):
            raise ValueError("give exactly one of points_per_side and point_grids")
        if self.points_per_side is not None and self.points_per_side < 1:
            raise ValueError(f"points_per_side must be >= 1, got {self.points_per_side}")
        if self.points_per_batch < 1:
            raise ValueError(f"points_per_batch must be >= 1, got {self.points_per_batch}")
        if self.crop_n_layers < 0:
            raise ValueError(f"crop_n_layers must be >= 0, got {self.crop_n_layers}")
        if self.crop_n_points_downscale_factor < 1:
            raise ValueError("crop_n_points_downscale_factor must be >= 1")
        if self.min_mask_region_area < 0:
            raise ValueError("min_mask_region_area must be >= 0")
        for name in (
            "box_nms_thresh",
            "crop_nms_thresh",
            "crop_overlap_ratio",
            "pred_iou_thresh",
            "stability_score_thresh",
        ):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        if self.point_grids is not None:
            grids = [np.asarray(g, dtype=np.float64).reshape(-1, 2) for g in self.point_grids]
            if len(grids) < self.crop_n_layers + 1:
                raise ValueError(
                    f"point_grids has {len(grids)} grids; crop_n_layers={self.crop_n_layers} "
                    f"needs {self.crop_n_layers + 1}"
                )
            self.point_grids = grids

    def _check_types(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            kind = _KINDS.get(f.name)
            if v is None and f.name in ("points_per_side", "point_grids"):
                continue
            if kind is bool and not isinstance(v, (bool, np.bool_)):
                raise ValueError(f"{f.name} must be true or false, got {v!r}")
            if kind is int and (isinstance(v, bool) or not isinstance(v, (int, np.integer))):
                raise ValueError(f"{f.name} must be an integer, got {v!r}")
            if kind is float:
                if isinstance(v, bool) or not isinstance(v, (int, float, np.number)):
                    raise ValueError(f"{f.name} must be a number, got {v!r}")
                if not math.isfinite(float(v)):
                    raise ValueError(f"{f.name} must be finite, got {v!r}")

    @classmethod
    def from_dict(cls, values: dict) -> EverythingParams:
        """Parameters from a mapping (e.g. a JSON record), refusing unknown names."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown segment-everything parameters: {', '.join(unknown)}")
        return cls(**values)

    @classmethod
    def parse_value(cls, name: str, text: str):
        """The value of parameter ``name`` from command-line text ("16", "0.5", "false")."""
        kind = _KINDS.get(name)
        if kind is None:
            raise ValueError(f"unknown segment-everything parameter {name!r}")
        t = text.strip()
        if kind is bool:
            if t.lower() in ("true", "1", "yes", "on"):
                return True
            if t.lower() in ("false", "0", "no", "off"):
                return False
            raise ValueError(f"{name} must be true or false, got {text!r}")
        if t.lower() == "none" and name == "points_per_side":
            return None
        try:
            return kind(t) if kind is not int else int(t)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise ValueError(f"{name} must be {what}, got {text!r}") from None

    def to_dict(self) -> dict:
        """JSON-ready values."""
        d = asdict(self)
        if self.point_grids is not None:
            d["point_grids"] = [np.asarray(g).tolist() for g in self.point_grids]
        return d

    def grids(self) -> list[np.ndarray]:
        """The point grid (in [0, 1]) of each crop layer."""
        if self.point_grids is not None:
            return list(self.point_grids)
        return [
            point_grid(int(self.points_per_side / (self.crop_n_points_downscale_factor**i)))
            for i in range(self.crop_n_layers + 1)
        ]


_KINDS = {
    "points_per_side": int,
    "points_per_batch": int,
    "pred_iou_thresh": float,
    "stability_score_thresh": float,
    "stability_score_offset": float,
    "mask_threshold": float,
    "box_nms_thresh": float,
    "crop_n_layers": int,
    "crop_nms_thresh": float,
    "crop_overlap_ratio": float,
    "crop_n_points_downscale_factor": int,
    "point_grids": list,
    "min_mask_region_area": int,
    "multimask_output": bool,
    "use_m2m": bool,
}


def point_grid(n: int) -> np.ndarray:
    """(n*n, 2) (x, y) points in [0, 1], the centres of an n x n grid of cells, row by row."""
    side = (np.arange(n, dtype=np.float64) + 0.5) / n
    xs, ys = np.meshgrid(side, side)
    return np.stack([xs.ravel(), ys.ravel()], axis=-1)


def crop_boxes(hw: tuple[int, int], n_layers: int, overlap_ratio: float) -> list[tuple[Box, int]]:
    """The whole image, then layer i's ``(2**i)**2`` overlapping crops: ``(box, layer)``.

    Boxes are XYXY with exclusive ends, image pixels.
    """
    h, w = hw
    out: list[tuple[Box, int]] = [((0, 0, w, h), 0)]
    short = min(h, w)
    for layer in range(1, n_layers + 1):
        n = 2**layer
        overlap = int(overlap_ratio * short * (2 / n))
        cw = int(math.ceil((overlap * (n - 1) + w) / n))
        ch = int(math.ceil((overlap * (n - 1) + h) / n))
        xs = [int((cw - overlap) * i) for i in range(n)]
        ys = [int((ch - overlap) * i) for i in range(n)]
        for x0, y0 in product(xs, ys):
            out.append(((x0, y0, min(x0 + cw, w), min(y0 + ch, h)), layer))
    return out


@dataclass
class AutoMask:
    """One mask found by the generator.

    Attributes:
        window: ``(x0, y0, x1, y1)`` image region ``mask`` covers (exclusive ends).
        mask: bool (y1 - y0, x1 - x0), the mask inside ``window``.
        box: ``(x0, y0, x1, y1)`` inclusive pixel box of the mask (as Meta's ``boxes``).
        predicted_iou: The model's own estimate of the mask's IoU.
        stability_score: IoU of the mask cut at ``t + offset`` and at ``t - offset``.
        point: The (x, y) click, image pixels, that gave the mask.
        crop_box: The crop (XYXY, exclusive ends) it was predicted in.
    """

    window: Box
    mask: np.ndarray
    box: tuple[float, float, float, float]
    predicted_iou: float
    stability_score: float
    point: tuple[float, float]
    crop_box: Box
    _area: int | None = field(default=None, repr=False, compare=False)

    @property
    def area(self) -> int:
        """Pixels in the mask."""
        if self._area is None:
            self._area = int(np.count_nonzero(self.mask))
        return self._area

    def full(self, hw: tuple[int, int]) -> np.ndarray:
        """The mask as a bool (H, W) array."""
        out = np.zeros(hw, dtype=bool)
        x0, y0, x1, y1 = self.window
        out[y0:y1, x0:x1] = self.mask
        return out

    def rle(self, hw: tuple[int, int]) -> dict:
        """COCO compressed RLE (``counts`` as str) of the mask at image size ``hw``."""
        from pycocotools import mask as mask_utils

        rle = mask_utils.encode(np.asfortranarray(self.full(hw).astype(np.uint8)))
        rle["counts"] = rle["counts"].decode("ascii")
        return rle

    def bbox_xywh(self) -> list[float]:
        """COCO box ``[x, y, width, height]`` of the mask; zeros when empty.

        Pixel edges, as pycocotools' ``toBbox`` gives for the mask (a one-pixel mask is 1
        wide); Meta's generator reports ``x1 - x0`` of its inclusive box (one less).
        """
        if self.area == 0:
            return [0.0, 0.0, 0.0, 0.0]
        x0, y0, x1, y1 = self.box
        return [float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1)]


class Cancelled(Exception):
    """The run was cancelled (see the ``cancel`` argument of :func:`iter_everything`)."""


def iter_everything(
    predictor: ImagePredictor,
    image: np.ndarray,
    params: EverythingParams | None = None,
    cancel: threading.Event | None = None,
) -> Generator[Progress, None, list[AutoMask]]:
    """Find every object of ``image``; yields progress per point batch, returns the masks.

    The masks come sorted as Meta's generator returns them (by predicted IoU within a crop,
    after each NMS). ``predictor`` is left with the last crop embedded; its embedding cache
    is used for every crop. Raises :class:`Cancelled` when ``cancel`` is set between batches.
    """
    params = params or EverythingParams()
    image = np.asarray(image)
    if image.ndim < 2 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"segment everything needs a 2D image, got shape {image.shape}")
    hw = (int(image.shape[0]), int(image.shape[1]))
    crops = [
        (b, layer)
        for b, layer in crop_boxes(hw, params.crop_n_layers, params.crop_overlap_ratio)
        if b[2] > b[0] and b[3] > b[1]  # a side shorter than the crop count gives empty crops
    ]
    if len(crops) > 1 and image.dtype != np.uint8:
        # each crop would otherwise get its own contrast stretch (16-bit, float data)
        image = to_float_rgb(image)
    grids = params.grids()
    batches = [math.ceil(len(grids[layer]) / params.points_per_batch) for _, layer in crops]
    total, done = sum(batches), 0
    masks: list[AutoMask] = []
    for (box, layer), n_batches in zip(crops, batches, strict=True):
        x0, y0, x1, y1 = box
        yield Progress(done, total, f"embedding crop {box}" if len(crops) > 1 else "embedding")
        _check(cancel)
        predictor.set_image(image[y0:y1, x0:x1])
        points = grids[layer] * np.array([x1 - x0, y1 - y0], dtype=np.float64)
        found: list[AutoMask] = []
        for b in range(n_batches):
            _check(cancel)
            chunk = points[b * params.points_per_batch : (b + 1) * params.points_per_batch]
            found += _decode_batch(predictor, chunk, box, hw, params)
            done += 1
            yield Progress(done, total, f"{len(masks) + len(found)} masks")
        found = _nms(found, [m.predicted_iou for m in found], params.box_nms_thresh)
        masks += [_uncrop(m, box) for m in found]
    if len(crops) > 1 and masks:
        areas = [(c[2] - c[0]) * (c[3] - c[1]) for c in (m.crop_box for m in masks)]
        masks = _nms(masks, [1.0 / a for a in areas], params.crop_nms_thresh)
    if params.min_mask_region_area > 0 and masks:
        masks = _remove_small_regions(masks, params.min_mask_region_area, params.box_nms_thresh, hw)
    yield Progress(total, total, f"{len(masks)} masks")
    return masks


def segment_everything(
    predictor: ImagePredictor, image: np.ndarray, params: EverythingParams | None = None
) -> list[AutoMask]:
    """:func:`iter_everything` run to the end."""
    job = iter_everything(predictor, image, params)
    while True:
        try:
            next(job)
        except StopIteration as stop:
            return stop.value


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("segment everything was cancelled")


def _decode_batch(
    predictor: ImagePredictor,
    points: np.ndarray,
    crop: Box,
    hw: tuple[int, int],
    p: EverythingParams,
) -> list[AutoMask]:
    """Candidates of one point batch that pass every per-mask filter (crop coordinates)."""
    pts = points.astype(np.float32)[:, None, :]
    labels = np.ones((len(points), 1), dtype=np.int32)
    logits, iou = predictor.decode(pts, labels, multimask=p.multimask_output)
    m = logits.shape[1]
    logits, iou = logits.flatten(0, 1), iou.flatten()
    point_of = np.repeat(points, m, axis=0)
    if p.use_m2m:
        prompt = logits.clamp(-32.0, 32.0)[:, None]
        refined, new_iou = [], []
        for s in range(0, len(logits), p.points_per_batch):
            lg, io = predictor.decode(
                point_of[s : s + p.points_per_batch].astype(np.float32)[:, None, :],
                np.ones((len(prompt[s : s + p.points_per_batch]), 1), dtype=np.int32),
                prompt[s : s + p.points_per_batch],
                multimask=False,
            )
            refined.append(lg[:, 0])
            new_iou.append(io[:, 0])
        logits, iou = torch.cat(refined), torch.cat(new_iou)
    crop_hw = (crop[3] - crop[1], crop[2] - crop[0])
    iou_np = iou.cpu().numpy()
    keep = np.arange(len(iou_np))
    if p.pred_iou_thresh > 0.0:
        keep = keep[iou_np[keep] > p.pred_iou_thresh]
    out = []
    for i in keep:
        stability, window, mask = _stability_and_mask(logits[i], crop_hw, p)
        if p.stability_score_thresh > 0.0 and not stability >= p.stability_score_thresh:
            continue
        if mask is None:  # a large window: the mask is made for the masks that pass only
            mask = _large_mask(logits[i], crop_hw, window, p.mask_threshold)
        box = _box_of(mask, window)
        if _near_crop_edge(box, crop, hw):
            continue
        out.append(
            AutoMask(
                window=window,
                mask=mask,
                box=box,
                predicted_iou=float(iou_np[i]),
                stability_score=float(stability),
                point=(float(point_of[i, 0]), float(point_of[i, 1])),
                crop_box=crop,
            )
        )
    return out


# Windows of more output pixels than this count the stability score's pixels without
# interpolating them (see _sorted_counts); below it, interpolating the window is as fast.
LARGE_WINDOW = 1 << 20


def _window(lg: np.ndarray, hw: tuple[int, int], low: float):
    """Output rows/columns that can exceed ``low``, with their bilinear taps; None if none.

    An output pixel reads source rows ``y0`` and ``y0 + 1`` (and columns likewise): it can
    exceed ``low`` only when one of them holds a cell above it.
    """
    above = lg > low
    rows = np.flatnonzero(above.any(axis=1))
    if not len(rows):
        return None
    cols = np.flatnonzero(above.any(axis=0))
    s_h, s_w = lg.shape
    ty0, ty1 = _linear_taps(s_h, hw[0])
    tx0, tx1 = _linear_taps(s_w, hw[1])
    ys = np.flatnonzero((ty0 >= rows[0] - 1) & (ty0 <= rows[-1]))
    xs = np.flatnonzero((tx0 >= cols[0] - 1) & (tx0 <= cols[-1]))
    if not len(ys) or not len(xs):
        return None
    ya, yb, xa, xb = int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1
    return (xa, ya, xb, yb), ty0[ya:yb], ty1[ya:yb], tx0[xa:xb], tx1[xa:xb]


def _along_x(lg: np.ndarray, y0: np.ndarray, x0: np.ndarray, wx: np.ndarray):
    """The source rows an output window reads, interpolated along x: (rows, W_window)."""
    s_h, s_w = lg.shape
    x1 = np.minimum(x0 + 1, s_w - 1)
    r0, r1 = int(y0[0]), min(int(y0[-1]) + 1, s_h - 1) + 1
    part = lg[r0:r1]
    return part[:, x0] * (np.float32(1) - wx) + part[:, x1] * wx, r0


def _upsample_window(
    logits: torch.Tensor, hw: tuple[int, int], threshold: float, offset: float
) -> tuple[Box, np.ndarray] | None:
    """Bilinear upsampling of (s, s) ``logits`` to ``hw``, only where it can pass a cut-off.

    Returns ``(window, values)``: the output region whose pixels can exceed
    ``threshold - |offset|`` and the upsampled logits there (``F.interpolate`` with
    ``align_corners=False``, up to float rounding), or None when no low-res cell exceeds it.
    """
    lg = logits.float().cpu().numpy()
    w = _window(lg, hw, threshold - abs(offset))
    if w is None:
        return None
    window, y0, wy, x0, wx = w
    along_x, r0 = _along_x(lg, y0, x0, wx)
    y1 = np.minimum(y0 + 1, lg.shape[0] - 1)
    wy = wy[:, None]
    values = along_x[y0 - r0] * (np.float32(1) - wy) + along_x[y1 - r0] * wy
    return window, values


def _sorted_counts(lg: np.ndarray, w, cuts: Sequence[float]) -> list[int]:
    """Pixels of the upsampled window above each cut-off, without making the window.

    Between two source rows ``a`` and ``b`` (already interpolated along x), an output row at
    weight ``t`` holds ``a + t (b - a)``: a pixel is above ``c`` for ``t`` past
    ``(c - a) / (b - a)`` (before it when ``b < a``). Sorting those crossing weights once per
    pair of source rows counts every output row between them with one search.
    """
    _, y0, wy, x0, wx = w
    along_x, r0 = _along_x(lg, y0, x0, wx)
    last = lg.shape[0] - 1
    counts = [0] * len(cuts)
    for k in np.unique(y0):
        rows = y0 == k
        t = wy[rows].astype(np.float64)
        a = along_x[int(k) - r0].astype(np.float64)
        b = along_x[min(int(k) + 1, last) - r0].astype(np.float64)
        d = b - a
        up, down, flat = d > 0, d < 0, d == 0
        for j, c in enumerate(cuts):
            n = len(t) * int(np.count_nonzero(a[flat] > c))
            if up.any():
                cross = np.sort((c - a[up]) / d[up])
                n += int(np.searchsorted(cross, t, "left").sum())
            if down.any():
                cross = np.sort((c - a[down]) / d[down])
                n += int((len(cross) - np.searchsorted(cross, t, "right")).sum())
            counts[j] += n
    return counts


def _stability_and_mask(logits: torch.Tensor, hw: tuple[int, int], p: EverythingParams):
    """``(stability, window, mask)`` of one candidate; ``mask`` None for a large window.

    Stability is NaN (0 / 0) when no pixel reaches the lower cut-off, as in Meta's code.
    """
    t, off = p.mask_threshold, p.stability_score_offset
    lg = logits.float().cpu().numpy()
    w = _window(lg, hw, t - abs(off))
    if w is None:
        return float("nan"), (0, 0, 0, 0), np.zeros((0, 0), bool)
    window = w[0]
    if (window[2] - window[0]) * (window[3] - window[1]) > LARGE_WINDOW:
        hi, lo = _sorted_counts(lg, w, (t + off, t - off))
        return (hi / lo if lo else float("nan")), window, None
    _, values = _upsample_window(logits, hw, t, off)
    hi = np.count_nonzero(values > t + off)
    lo = np.count_nonzero(values > t - off)
    return (hi / lo if lo else float("nan")), window, values > t


def _large_mask(logits: torch.Tensor, hw: tuple[int, int], window: Box, threshold: float):
    """The mask inside ``window`` of a big image (:func:`upsample_masks`' sign-change path)."""
    full = upsample_masks((logits.float().cpu() - threshold)[None], hw)[0]
    x0, y0, x1, y1 = window
    return np.ascontiguousarray(full[y0:y1, x0:x1])


def _box_of(mask: np.ndarray, window: Box) -> tuple[float, float, float, float]:
    """Inclusive XYXY box of ``mask`` placed at ``window``; zeros when empty (as Meta)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return (0.0, 0.0, 0.0, 0.0)
    x0, y0 = window[0], window[1]
    return (
        float(x0 + cols[0]),
        float(y0 + rows[0]),
        float(x0 + cols[-1]),
        float(y0 + rows[-1]),
    )


def _near_crop_edge(box, crop: Box, hw: tuple[int, int], atol: float = 20.0) -> bool:
    """True when the mask touches an inner edge of its crop (not an edge of the image)."""
    b = np.asarray(box, dtype=np.float64) + np.array([crop[0], crop[1], crop[0], crop[1]])
    near_crop = np.abs(b - np.asarray(crop, dtype=np.float64)) <= atol
    near_image = np.abs(b - np.array([0.0, 0.0, hw[1], hw[0]])) <= atol
    return bool(np.any(near_crop & ~near_image))


def _nms(masks: list[AutoMask], scores: Sequence[float], thresh: float) -> list[AutoMask]:
    """Box NMS (torchvision); survivors by decreasing score."""
    if not masks:
        return []
    boxes = torch.tensor([m.box for m in masks], dtype=torch.float32)
    keep = batched_nms(
        boxes,
        torch.tensor(np.asarray(scores, dtype=np.float32)),
        torch.zeros(len(masks), dtype=torch.int64),
        thresh,
    )
    return [masks[int(i)] for i in keep]


def _uncrop(m: AutoMask, crop: Box) -> AutoMask:
    """Move a mask from its crop's coordinates into the image's."""
    dx, dy = crop[0], crop[1]
    x0, y0, x1, y1 = m.window
    bx0, by0, bx1, by1 = m.box
    return AutoMask(
        window=(x0 + dx, y0 + dy, x1 + dx, y1 + dy),
        mask=m.mask,
        box=(bx0 + dx, by0 + dy, bx1 + dx, by1 + dy),
        predicted_iou=m.predicted_iou,
        stability_score=m.stability_score,
        point=(m.point[0] + dx, m.point[1] + dy),
        crop_box=crop,
        _area=m._area,
    )


def remove_small_regions(
    mask: np.ndarray, min_area: int, mode: str, outside: np.ndarray | None = None
) -> tuple[np.ndarray, bool]:
    """Remove islands (``mode="islands"``) or fill holes (``"holes"``) under ``min_area``.

    Components are 8-connected. When every island is small, the largest one is kept.
    ``outside`` marks pixels that stand for more background than they count (a border
    around a window of a bigger image): a hole reaching them is never filled.
    Returns the mask and whether it changed.
    """
    if mode not in ("holes", "islands"):
        raise ValueError(f"mode must be 'holes' or 'islands', got {mode!r}")
    holes = mode == "holes"
    region = ~mask if holes else mask
    labels, n = ndimage.label(region, structure=np.ones((3, 3), bool))
    if n == 0:
        return mask, False
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:].astype(np.float64)
    if holes and outside is not None:
        sizes[np.unique(labels[outside & (labels > 0)]) - 1] = np.inf
    small = np.flatnonzero(sizes < min_area) + 1
    if not len(small):
        return mask, False
    if holes:
        return mask | np.isin(labels, small), True
    keep = np.setdiff1d(np.arange(1, n + 1), small)
    if not len(keep):
        keep = np.array([int(np.argmax(sizes)) + 1])
    return np.isin(labels, keep), True


def _remove_small_regions(
    masks: list[AutoMask], min_area: int, nms: float, hw: tuple[int, int]
) -> list[AutoMask]:
    """Clean every mask, then drop the duplicates the cleaning made (changed masks lose)."""
    out = []
    unchanged = []
    for m in masks:
        x0, y0, x1, y1 = m.window
        # the image outside the window is background: a one-pixel border stands for it on
        # each side that is not the image's edge, so holes open to it are not filled
        pad = ((int(y0 > 0), int(y1 < hw[0])), (int(x0 > 0), int(x1 < hw[1])))
        padded = np.pad(m.mask, pad)
        outside = np.pad(np.zeros(m.mask.shape, bool), pad, constant_values=True)
        new, c1 = remove_small_regions(padded, min_area, "holes", outside)
        new, c2 = remove_small_regions(new, min_area, "islands")
        new = new[pad[0][0] : new.shape[0] - pad[0][1], pad[1][0] : new.shape[1] - pad[1][1]]
        unchanged.append(0.0 if (c1 or c2) else 1.0)
        out.append(
            AutoMask(
                m.window,
                new,
                _box_of(new, m.window),
                m.predicted_iou,
                m.stability_score,
                m.point,
                m.crop_box,
            )
        )
    return _nms(out, unchanged, nms)
