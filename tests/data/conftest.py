"""Fixtures for the datasets layer: real data under ../shared, converted once per session."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam_pets.data.convert import (
    ConvertConfig,
    convert_coco,
    convert_labelme,
    convert_oxford_pets,
)
from sam_pets.progress import run_job

_COCO_NUMPY2_WARNING = "__array__ implementation doesn't accept a copy keyword"
SHARED_DATA = (
    Path(os.environ["SAM_PETS_SHARED"]) / "data"
    if os.environ.get("SAM_PETS_SHARED")
    else Path(__file__).resolve().parents[2].parent / "shared" / "data"
)


@pytest.fixture(autouse=True)
def _quiet_pycocotools():
    """pycocotools 2.0.x warns on every decode under NumPy 2 (harmless); keep logs readable."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_COCO_NUMPY2_WARNING, category=DeprecationWarning)
        yield


def data_path(*parts: str) -> Path:
    """Path under ../shared/data, skipping the test cleanly when it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not available: {p}")
    return p


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.array(im)


@pytest.fixture(scope="session")
def oxford_dev() -> Path:
    return data_path("oxford_pets_dev")


@pytest.fixture(scope="session")
def oxford_dev_canonical(tmp_path_factory, oxford_dev):
    """All 240 dev pairs converted once: (dataset folder, summary)."""
    out = tmp_path_factory.mktemp("pets") / "ds"
    summary = run_job(convert_oxford_pets(oxford_dev, out, ConvertConfig(seed=0)), show=False)
    return out, summary


@pytest.fixture(scope="session")
def coco_sample() -> Path:
    return data_path("coco_sample")


@pytest.fixture(scope="session")
def coco_tiny_canonical(tmp_path_factory, coco_sample):
    """A stratified 6-image subset of coco_sample converted once: (folder, summary)."""
    out = tmp_path_factory.mktemp("coco") / "ds"
    job = convert_coco(
        coco_sample / "annotations.json", coco_sample / "images", out, ConvertConfig(tiny=6)
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_COCO_NUMPY2_WARNING, category=DeprecationWarning)
        return out, run_job(job, show=False)


@pytest.fixture(scope="session")
def labelme_sample() -> Path:
    return data_path("labelme_sample")


@pytest.fixture(scope="session")
def labelme_canonical(tmp_path_factory, labelme_sample):
    src = labelme_sample
    out = tmp_path_factory.mktemp("labelme") / "ds"
    return out, run_job(convert_labelme(src, out), show=False)


@pytest.fixture(scope="session")
def pet_mask_and_trimap(oxford_dev):
    """A real pet mask (trimap == 1) and its trimap (Bengal_63, 500x375)."""
    trimap = read_png(oxford_dev / "trimaps" / "Bengal_63.png")
    return trimap == 1, trimap
