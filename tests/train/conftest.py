"""Fixtures for the training tests: real pet images converted once, small fast configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

SHARED = (
    Path(os.environ["SAM_PETS_SHARED"])
    if os.environ.get("SAM_PETS_SHARED")
    else Path(__file__).resolve().parents[2].parent / "shared"
)


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: the CI box has 2 shared cores; oversubscription is much slower."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def pets_dataset(tmp_path_factory) -> Path:
    """The 240 Oxford pet images of ../shared as a canonical dataset (train_tiny: 8 items)."""
    from sam_pets.data.convert import ConvertConfig, convert_oxford_pets
    from sam_pets.progress import run_job

    src = SHARED / "data" / "oxford_pets_dev"
    if not src.exists():
        pytest.skip(f"shared data not available: {src}")
    out = tmp_path_factory.mktemp("pets") / "ds"
    run_job(convert_oxford_pets(src, out, ConvertConfig(seed=0)), show=False)
    return out


@pytest.fixture
def make_cfg(pets_dataset, tmp_path):
    """TrainConfig factory: test model, tiny splits, few correction rounds."""
    from sam_pets.train.config import TrainConfig

    def make(**kw):
        base = dict(dataset=str(pets_dataset), out=str(tmp_path / "run"), model_config="test",
                    steps=3, batch_size=2, lr=1e-3, train_split="train_tiny",
                    val_split="val_tiny", val_items=4, val_every=0, correction_rounds=1)
        base.update(kw)
        return TrainConfig(**base)

    return make
