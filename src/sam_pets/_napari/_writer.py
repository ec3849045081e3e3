"""napari writer: a Labels layer as a label image (PNG for 2D, TIFF for 2D or stacks)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from sam_pets.progress import Notice


def write_labels(path: str, data, meta: dict) -> list[str]:
    """Write label ``data`` to ``path`` (written atomically); returns the paths written.

    napari drops a writer's exception and only says the plugin is "not a valid writer", so
    the reason (a stack asked for as PNG, a folder in the way...) is shown as a warning,
    which napari turns into a notification, and nothing is written.
    """
    from sam_pets.data.formats.label_images import write_label_image

    target = Path(path)
    if target.suffix.lower() not in (".png", ".tif", ".tiff"):
        target = target.with_suffix(".tif" if np.ndim(data) > 2 else ".png")
    data = np.asarray(data)
    try:
        if target.suffix.lower() == ".png" and data.ndim != 2:
            raise ValueError(
                f"a PNG holds one 2-D label image and this layer is {data.ndim}-D "
                f"{data.shape}: save it as .tif (all slices in one file)"
            )
        write_label_image(target, data)
    except (ValueError, OSError) as e:
        warnings.warn(f"sam-pets: {target} not saved: {e}", Notice, stacklevel=2)
        return []
    return [str(target)]
