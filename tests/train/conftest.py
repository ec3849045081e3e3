"""Fixtures for the training tests: real pet images converted once, small fast configs."""

from __future__ import annotations

import pytest

from conftest import convert_pets_dev


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="session")
def pets_dataset(tmp_path_factory):
    """The 240 Oxford pet images of ../shared as a canonical dataset (train_tiny: 8 items)."""
    return convert_pets_dev(tmp_path_factory)


@pytest.fixture
def make_cfg(pets_dataset, tmp_path):
    """TrainConfig factory: test model, tiny splits, few correction rounds."""
    from sam_pets.train.config import TrainConfig

    def make(**kw):
        base = dict(
            dataset=str(pets_dataset),
            out=str(tmp_path / "run"),
            model_config="test",
            steps=3,
            batch_size=2,
            lr=1e-3,
            train_split="train_tiny",
            val_split="val_tiny",
            val_items=4,
            val_every=0,
            correction_rounds=1,
        )
        base.update(kw)
        return TrainConfig(**base)

    return make
