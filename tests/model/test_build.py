"""Device names: one ValueError for names torch does not know and devices this machine lacks."""

from __future__ import annotations

import pytest
import torch

from sam_pets.model.device import parse_device


@pytest.mark.parametrize("name", ["foo", "cuda:abc", "cpu:x:y", ""])
def test_unknown_device_names_are_value_errors(name):
    with pytest.raises(ValueError, match="unknown device"):
        parse_device(name)


def test_absent_cuda_device_is_a_value_error():
    name = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU (or any GPU on a CPU box)
    with pytest.raises(ValueError, match="requested but"):
        parse_device(name)
    assert parse_device("cpu") == torch.device("cpu")
