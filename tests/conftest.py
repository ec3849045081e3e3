"""Shared fixtures: seeds, data locations, tiny models and real pet images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SAM_PETS_SHARED", REPO.parent / "shared"))
PETS_DEV = SHARED / "data" / "oxford_pets_dev"


def shared_path(*parts: str) -> Path:
    """Path under ../shared, skipping the test cleanly when it is absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not available: {p}")
    return p


def load_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="session")
def pet_image() -> np.ndarray:
    """A real 500x375 Oxford-IIIT Pet photo (RGB uint8): the sample sam-pets ships."""
    from sam_pets.samples import sample_path

    return load_rgb(sample_path("Bengal_63.jpg"))


@pytest.fixture(scope="session")
def pet_trimap() -> np.ndarray:
    """The trimap of :func:`pet_image` (1 pet, 2 background, 3 border), shipped with it."""
    from PIL import Image

    from sam_pets.samples import trimap_path

    with Image.open(trimap_path("Bengal_63.jpg")) as im:
        return np.asarray(im)


@pytest.fixture(scope="session")
def test_model():
    """The tiny ``test`` config, randomly initialised with a fixed seed."""
    from sam_pets.model import build_model

    return build_model("test", seed=0)


@pytest.fixture
def one_torch_thread():
    """One torch thread: the CI box has 2 shared cores; oversubscription is much slower."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


CAT_BREEDS = ("Bengal", "Persian", "Siamese", "Sphynx")
DOG_BREEDS = ("beagle", "boxer", "pug", "samoyed")


def sample_pets_folder(folder: Path, per_breed: int = 3) -> Path:
    """An Oxford-IIIT Pet style folder (flat layout) made from the photo sam-pets ships.

    Each item is the sample photo and its trimap flipped, cropped and colour-shifted (seeded),
    named after a breed (cats capitalised, dogs not, as Oxford names them): real pixels for
    the machinery tests on a fresh clone without ../shared.
    """
    from PIL import Image

    from sam_pets.samples import sample_path, trimap_path

    image = load_rgb(sample_path())
    with Image.open(trimap_path()) as im:
        trimap = np.asarray(im)
    (folder / "images").mkdir(parents=True)
    (folder / "trimaps").mkdir()
    rng = np.random.default_rng(0)
    h, w = trimap.shape
    for breed in CAT_BREEDS + DOG_BREEDS:
        for i in range(1, per_breed + 1):
            img, tri = image, trimap
            if rng.random() < 0.5:
                img, tri = img[:, ::-1], tri[:, ::-1]
            y0, x0 = int(rng.integers(0, h // 8)), int(rng.integers(0, w // 8))
            y1, x1 = h - int(rng.integers(0, h // 8)), w - int(rng.integers(0, w // 8))
            img, tri = img[y0:y1, x0:x1], tri[y0:y1, x0:x1]
            shift = rng.integers(-30, 30, 3)
            img = np.clip(img.astype(np.int16) + shift, 0, 255).astype(np.uint8)
            Image.fromarray(np.ascontiguousarray(img)).save(folder / "images" / f"{breed}_{i}.jpg")
            Image.fromarray(np.ascontiguousarray(tri)).save(folder / "trimaps" / f"{breed}_{i}.png")
    return folder


def convert_pets_dev(tmp_path_factory, tiny: int | None = None) -> Path:
    """../shared's Oxford pet dev set as a canonical dataset (``tiny`` items if given).

    Without ../shared: 24 items made from the shipped sample (:func:`sample_pets_folder`).
    """
    from sam_pets.data.convert import ConvertConfig, convert_oxford_pets
    from sam_pets.progress import run_job

    src = PETS_DEV
    if not src.is_dir():
        src = sample_pets_folder(tmp_path_factory.mktemp("sample_pets") / "pets")
    out = tmp_path_factory.mktemp("pets") / "ds"
    run_job(convert_oxford_pets(src, out, ConvertConfig(seed=0, tiny=tiny)), show=False)
    return out


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Expose each phase's report as ``item.rep_<phase>`` (napari's viewer fixture reads it)."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture(autouse=True)
def _user_folders(tmp_path_factory, monkeypatch):
    """Per-user data and settings go to a temporary folder: no test writes to the home."""
    base = tmp_path_factory.mktemp("user")
    monkeypatch.setenv("SAM_PETS_DATA_DIR", str(base / "data"))
    monkeypatch.setenv("SAM_PETS_CONFIG_DIR", str(base / "config"))
    # the Annotator loads the built-in model when it opens; the tests that are not about
    # that set their own predictor (tests/_napari/test_model_picker.py turns it back on)
    monkeypatch.setenv("SAM_PETS_AUTOLOAD", "0")
