"""napari writer: a Labels layer as a label image (PNG for 2D, TIFF for 2D or stacks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_labels(path: str, data, meta: dict) -> list[str]:
    """Write label ``data`` to ``path`` (written atomically); returns the paths written."""
    from sam_pets.data.formats.label_images import write_label_image

    target = Path(path)
    if target.suffix.lower() not in (".png", ".tif", ".tiff"):
        target = target.with_suffix(".tif" if np.ndim(data) > 2 else ".png")
    write_label_image(target, np.asarray(data))
    return [str(target)]
