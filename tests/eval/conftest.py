"""Fixtures for the evaluation tests: a small synthetic canonical dataset and fake predictors."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from sam_pets.data.formats import sam2_folder as canon
from sam_pets.data.types import Annotation, ObjectInfo
from sam_pets.predict.predictor import Prediction

HW = (32, 40)


def square(y0: int, x0: int, side: int, hw=HW) -> np.ndarray:
    m = np.zeros(hw, bool)
    m[y0 : y0 + side, x0 : x0 + side] = True
    return m


def write_dataset(root, items: list[dict]) -> None:
    """A canonical dataset of ``items`` (name, masks (K,H,W), species, breed, ignore, image)."""
    manifest = canon.new_manifest()
    for it in items:
        masks = np.asarray(it["masks"], bool)
        image = it.get("image")
        if image is None:
            image = np.full((*masks.shape[1:], 3), 100, np.uint8)
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="JPEG", quality=95)
        objs = tuple(ObjectInfo(k + 1, it.get("species"), None, False) for k in range(len(masks)))
        ann = Annotation(
            it["name"],
            masks,
            objs,
            it.get("ignore"),
            image,
            None,
            it.get("species"),
            it.get("breed"),
        )
        manifest["items"].append(
            canon.write_item(root, ann, buf.getvalue(), it.get("split", "val"))
        )
    canon.save_manifest(root, manifest)
    canon.write_lists(root, manifest)


def synthetic_items() -> list[dict]:
    ignore = np.zeros(HW, bool)
    ignore[:, 0:2] = True
    return [
        {"name": "cat_a", "masks": [square(5, 5, 10)], "species": "cat", "breed": "Bengal"},
        {
            "name": "cat_b",
            "masks": [square(10, 20, 10)],
            "species": "cat",
            "breed": "Birman",
            "ignore": ignore,
        },
        {
            "name": "dog_a",
            "masks": [square(2, 2, 10), square(16, 24, 8)],
            "species": "dog",
            "breed": "beagle",
        },
    ]


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalds") / "ds"
    write_dataset(root, synthetic_items())
    return root


class FakePredictor:
    """Box prompts: the filled box. Clicks: a 10x10 square from (x-5, y-5) per positive click.

    Counts embeddings (``set_image`` calls) so tests can check they happen once per image.
    """

    def __init__(self) -> None:
        self.hw = None
        self.embeds = 0

    def set_image(self, image):
        self.hw = image.shape[:2]
        self.embeds += 1

    def predict(self, points_xy=None, labels=None, box_xyxy=None, mask_logits=None, multimask=True):
        m = np.zeros(self.hw, bool)
        if box_xyxy is not None:
            x0, y0, x1, y1 = np.round(np.asarray(box_xyxy)).astype(int)
            m[y0 : y1 + 1, x0 : x1 + 1] = True
        for (x, y), lab in zip(
            np.asarray(points_xy if points_xy is not None else []),
            np.asarray(labels if labels is not None else []),
            strict=True,
        ):
            x, y = int(x), int(y)
            m[max(y - 5, 0) : y + 5, max(x - 5, 0) : x + 5] = bool(lab)
        n = 3 if multimask else 1
        return Prediction(
            np.repeat(m[None], n, 0),
            np.linspace(0.9, 0.5, n),
            np.zeros((n, 8, 8), np.float32),
            np.float32(1.0),
        )
