"""Image perturbations of the Oxford-pets robustness study, each at ten levels.

Every perturbation maps an (H, W, 3) uint8 image to a uint8 image of the same shape: values
are computed in floats, rounded to integers and clamped to 0..255. Level 0 of every
perturbation leaves the image unchanged. Random perturbations take a generator, seeded by the
caller per (image, perturbation, level), so every run sees the same noise.

=================  ===========================================================  ===========
name               what                                                         levels
=================  ===========================================================  ===========
gaussian_noise     add N(0, std^2) per pixel and channel                        std 0..18
gaussian_blur      convolve with 1/16 [[1,2,1],[2,4,2],[1,2,1]] n times         n 0..9
                   (edges replicated; rounded after each pass)
contrast_increase  multiply by a factor                                         1.0..1.25
contrast_decrease  multiply by a factor                                         1.0..0.10
brightness_increase  add a constant                                             0..45
brightness_decrease  subtract a constant                                        0..45
occlusion          black square of the given edge at a random position          0..45 px
                   (fully inside the image when it fits)
salt_and_pepper    replace that fraction of pixels by 0 or 255 (half each,      0..0.18
                   all channels)
=================  ===========================================================  ===========
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

LEVELS: dict[str, tuple[float, ...]] = {
    "gaussian_noise": tuple(range(0, 20, 2)),
    "gaussian_blur": tuple(range(10)),
    "contrast_increase": (1.0, 1.01, 1.02, 1.03, 1.04, 1.05, 1.1, 1.15, 1.20, 1.25),
    "contrast_decrease": (1.0, 0.95, 0.90, 0.85, 0.80, 0.60, 0.40, 0.30, 0.20, 0.10),
    "brightness_increase": tuple(range(0, 50, 5)),
    "brightness_decrease": tuple(range(0, 50, 5)),
    "occlusion": tuple(range(0, 50, 5)),
    "salt_and_pepper": tuple(round(0.02 * i, 2) for i in range(10)),
}
PERTURBATIONS = tuple(LEVELS)
_BLUR = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=np.float64) / 16.0


def _clamp(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def gaussian_noise(image: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Add zero-mean Gaussian noise of standard deviation ``std`` (grey levels)."""
    if std == 0:
        return image.copy()
    return _clamp(image + rng.normal(0.0, std, size=image.shape))


def gaussian_blur(image: np.ndarray, times: float, rng=None) -> np.ndarray:
    """Convolve each channel with the 3x3 binomial mask ``times`` times."""
    from scipy import ndimage

    out = image.copy()
    for _ in range(int(times)):
        chans = [
            ndimage.convolve(out[..., c].astype(np.float64), _BLUR, mode="nearest")
            for c in range(out.shape[-1])
        ]
        out = _clamp(np.stack(chans, axis=-1))
    return out


def scale_contrast(image: np.ndarray, factor: float, rng=None) -> np.ndarray:
    """Multiply every value by ``factor``."""
    return _clamp(image.astype(np.float64) * factor)


def shift_brightness(image: np.ndarray, offset: float, rng=None) -> np.ndarray:
    """Add ``offset`` (negative to darken) to every value."""
    return _clamp(image.astype(np.float64) + offset)


def occlude(image: np.ndarray, edge: float, rng: np.random.Generator) -> np.ndarray:
    """Paint a black ``edge`` x ``edge`` square at a uniformly random position."""
    out = image.copy()
    e = int(edge)
    if e <= 0:
        return out
    h, w = image.shape[:2]
    y = int(rng.integers(0, max(h - e, 0) + 1))
    x = int(rng.integers(0, max(w - e, 0) + 1))
    out[y : y + e, x : x + e] = 0
    return out


def salt_and_pepper(image: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Set a fraction ``amount`` of pixels to black or white (each with probability 1/2)."""
    out = image.copy()
    if amount <= 0:
        return out
    hit = rng.random(image.shape[:2]) < amount
    salt = rng.random(image.shape[:2]) < 0.5
    out[hit & salt] = 255
    out[hit & ~salt] = 0
    return out


_FUNCS: dict[str, Callable] = {
    "gaussian_noise": gaussian_noise,
    "gaussian_blur": gaussian_blur,
    "contrast_increase": scale_contrast,
    "contrast_decrease": scale_contrast,
    "brightness_increase": shift_brightness,
    "brightness_decrease": lambda im, v, rng=None: shift_brightness(im, -v),
    "occlusion": occlude,
    "salt_and_pepper": salt_and_pepper,
}


def perturb(image: np.ndarray, name: str, level: float, rng: np.random.Generator) -> np.ndarray:
    """Apply perturbation ``name`` at ``level`` (a value from :data:`LEVELS`).

    Args:
        image: (H, W, 3) uint8 RGB.
        name: One of :data:`PERTURBATIONS`.
        level: The perturbation's parameter (std, passes, factor, offset, edge, amount).
        rng: Generator for the random perturbations.

    Returns:
        (H, W, 3) uint8, a new array.
    """
    if name not in _FUNCS:
        raise ValueError(f"unknown perturbation {name!r}; choose from {', '.join(PERTURBATIONS)}")
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError(f"image must be (H, W, C) uint8, got {image.shape} {image.dtype}")
    return _FUNCS[name](image, level, rng)


def level_indices(n_levels: int) -> list[int]:
    """Indices of ``n_levels`` levels out of ten, evenly spread, first and last included."""
    if not 2 <= n_levels <= 10:
        raise ValueError(f"levels must be between 2 and 10, got {n_levels}")
    return sorted({int(round(v)) for v in np.linspace(0, 9, n_levels)})
