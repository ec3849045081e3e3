"""read_image: one ImageReadError naming the file for every kind of bad input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sam_pets.predict.images import ImageReadError, read_image


def test_folder_is_named_as_a_folder(tmp_path):
    with pytest.raises(ImageReadError, match="is a folder, not an image file"):
        read_image(tmp_path)
    with pytest.raises(ImageReadError, match="nope.png: file not found"):
        read_image(tmp_path / "nope.png")


def test_decompression_bomb_is_refused_by_name(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    Image.fromarray(np.zeros((40, 50), np.uint8)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # 2000 px > twice the limit
    with pytest.raises(ImageReadError, match=r"bomb\.png: image too large to read safely"):
        read_image(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # a caller may raise the limit
    assert read_image(path).shape == (40, 50)
