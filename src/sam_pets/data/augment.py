"""Joint image / mask / box augmentation with torchvision transforms v2.

Geometric transforms move the image (``tv_tensors.Image``), instance masks and ignore mask
(``tv_tensors.Mask``) and boxes (``tv_tensors.BoundingBoxes``, XYXY) together; colour jitter
touches the image only. Evaluation uses no augmentation (``augment=None``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation.

    Attributes:
        hflip_prob: Probability of a horizontal flip.
        vflip_prob: Probability of a vertical flip (pets are rarely upside down: 0).
        scale_range: Zoom factor range; > 1 crops in, < 1 zooms out with zero padding.
            ``(1, 1)`` disables scale jitter.
        translate: Maximum shift as a fraction of width/height (0 disables).
        brightness: Colour jitter strength (0 disables each).
        contrast: See ``brightness``.
        saturation: See ``brightness``.
        hue: Hue jitter in [0, 0.5].
        resize: Final square side in pixels (None keeps the size; SAM 2 trains at 1024).
        object_crop_prob: Probability that a sample is cropped around one of its objects
            before the other transforms (what a zoom-in predictor sees; 0 disables).
        object_crop_margin: Range of the margin added on each side of the object's box, as
            a fraction of the box side; each side draws its own, so the object also shifts
            and the crop's aspect changes. The crop is clipped to the image.
        copy_paste_prob: Probability that a sample's objects are first pasted onto another
            background (see :mod:`sam_pets.data.copy_paste`; datasets that have backgrounds).
        paste_objects_prob: Probability that objects cut from other items are pasted onto a
            sample as new objects (1 to ``paste_objects_max`` of them, each 15-60 % of the
            image's shorter side; see :func:`sam_pets.data.copy_paste.paste_objects`).
        paste_objects_max: The most objects pasted onto one sample.
    """

    hflip_prob: float = 0.5
    vflip_prob: float = 0.0
    scale_range: tuple[float, float] = (0.75, 1.25)
    translate: float = 0.1
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.02
    resize: int | None = None
    object_crop_prob: float = 0.0
    object_crop_margin: tuple[float, float] = (0.0, 0.5)
    copy_paste_prob: float = 0.0
    paste_objects_prob: float = 0.0
    paste_objects_max: int = 2


# Settings that turn every jitter off: ``AugmentConfig(**NO_JITTER)`` changes nothing but what
# it is asked for (a resize, object crops...).
NO_JITTER = dict(
    hflip_prob=0.0,
    scale_range=(1.0, 1.0),
    translate=0.0,
    brightness=0.0,
    contrast=0.0,
    saturation=0.0,
    hue=0.0,
)


def object_crop_window(
    box_xyxy: torch.Tensor, size_hw: tuple[int, int], margins: torch.Tensor
) -> tuple[int, int, int, int]:
    """Crop window ``(top, left, height, width)`` around a box, clipped to the image.

    Args:
        box_xyxy: (4,) box with inclusive pixel indices.
        size_hw: (H, W) of the image.
        margins: (4,) margins left, top, right, bottom as fractions of the box width/height.
    """
    h, w = size_hw
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    bw, bh = x1 - x0 + 1.0, y1 - y0 + 1.0
    left = max(0, int(math.floor(x0 - float(margins[0]) * bw)))
    top = max(0, int(math.floor(y0 - float(margins[1]) * bh)))
    right = min(w, int(math.ceil(x1 + 1.0 + float(margins[2]) * bw)))
    bottom = min(h, int(math.ceil(y1 + 1.0 + float(margins[3]) * bh)))
    return top, left, max(1, bottom - top), max(1, right - left)


class RandomObjectCrop(v2.Transform):
    """With probability ``p``, crop image, masks and boxes around one random object's box.

    The box is read from the ``BoundingBoxes`` input (XYXY pixel edges, as v2 keeps them);
    each side gets a margin drawn from ``margin`` (fraction of the box side). Samples with
    no object are left alone. Randomness comes from torch's global generator, like the other
    v2 transforms.
    """

    def __init__(self, p: float, margin: tuple[float, float]) -> None:
        super().__init__()
        self.p, self.margin = float(p), (float(margin[0]), float(margin[1]))

    def forward(self, *inputs):
        """Crop every tv_tensor of ``inputs`` (image, masks, boxes) to the same window."""
        flat = inputs if len(inputs) > 1 else inputs[0]
        boxes = [t for t in flat if isinstance(t, tv_tensors.BoundingBoxes)]
        if not boxes or not len(boxes[0]) or torch.rand(()) >= self.p:
            return flat
        b = boxes[0]
        k = int(torch.randint(len(b), ()))
        lo, hi = self.margin
        margins = lo + (hi - lo) * torch.rand(4)
        edge = b[k].as_subclass(torch.Tensor) - torch.tensor([0.0, 0.0, 1.0, 1.0])
        top, left, ch, cw = object_crop_window(edge, tuple(b.canvas_size), margins)
        return tuple(
            F.crop(t, top, left, ch, cw) if isinstance(t, tv_tensors.TVTensor) else t for t in flat
        )


def build_transform(cfg: AugmentConfig | None) -> v2.Transform | None:
    """The v2 pipeline for ``cfg`` (None for no augmentation).

    The pipeline takes and returns ``(image, masks, ignore, boxes)`` tv_tensors jointly.
    """
    if cfg is None:
        return None
    steps: list[v2.Transform] = []
    if cfg.object_crop_prob > 0:
        steps.append(RandomObjectCrop(cfg.object_crop_prob, cfg.object_crop_margin))
    if cfg.resize:  # first: the other transforms then work on S x S pixels, not the photo's
        steps.append(v2.Resize((cfg.resize, cfg.resize), antialias=True))
    if cfg.hflip_prob > 0:
        steps.append(v2.RandomHorizontalFlip(cfg.hflip_prob))
    if cfg.vflip_prob > 0:
        steps.append(v2.RandomVerticalFlip(cfg.vflip_prob))
    if tuple(cfg.scale_range) != (1.0, 1.0) or cfg.translate > 0:
        steps.append(
            v2.RandomAffine(
                degrees=0.0,
                translate=(cfg.translate, cfg.translate) if cfg.translate > 0 else None,
                scale=tuple(cfg.scale_range),
            )
        )
    if max(cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue) > 0:
        steps.append(
            v2.ColorJitter(
                cfg.brightness or None,
                cfg.contrast or None,
                cfg.saturation or None,
                cfg.hue or None,
            )
        )
    steps.append(v2.ClampBoundingBoxes())
    return v2.Compose(steps)
