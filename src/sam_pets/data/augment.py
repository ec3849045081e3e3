"""Joint image / mask / box augmentation with torchvision transforms v2.

Geometric transforms move the image (``tv_tensors.Image``), instance masks and ignore mask
(``tv_tensors.Mask``) and boxes (``tv_tensors.BoundingBoxes``, XYXY) together; colour jitter
touches the image only. Evaluation uses no augmentation (``augment=None``).
"""

from __future__ import annotations

from dataclasses import dataclass

from torchvision.transforms import v2


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


def build_transform(cfg: AugmentConfig | None) -> v2.Transform | None:
    """The v2 pipeline for ``cfg`` (None for no augmentation).

    The pipeline takes and returns ``(image, masks, ignore, boxes)`` tv_tensors jointly.
    """
    if cfg is None:
        return None
    steps: list[v2.Transform] = []
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
    if cfg.resize:
        steps.append(v2.Resize((cfg.resize, cfg.resize), antialias=True))
    steps.append(v2.ClampBoundingBoxes())
    return v2.Compose(steps)
