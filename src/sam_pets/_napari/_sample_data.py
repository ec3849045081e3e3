"""Sample data shown in napari's File > Open Sample menu."""

from __future__ import annotations

import numpy as np


def pet_sample():
    """Return the bundled pet photo as napari layer data."""
    from PIL import Image

    from sam_pets.samples import sample_path

    path = sample_path()
    with Image.open(path) as im:
        data = np.asarray(im.convert("RGB"))
    return [(data, {"name": path.stem, "rgb": True}, "image")]
