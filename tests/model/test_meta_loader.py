"""A checkpoint written by sam-pets loads in Meta's own strict loader (build_sam2)."""

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.parity
pytest.importorskip("sam2", reason="Meta's sam2 package is not installed")


def test_sam_pets_checkpoint_loads_in_build_sam2(tmp_path):
    from sam2.build_sam import build_sam2

    from sam_pets.model import build_model, save_checkpoint

    ours = build_model("tiny", seed=4)
    path = save_checkpoint(ours, tmp_path / "finetuned.pt", metadata={"train": {"steps": 1}})
    meta = build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", str(path), device="cpu")
    msd = meta.state_dict()
    for k, v in ours.state_dict().items():
        assert torch.equal(v, msd[k]), k
    assert np.isfinite(msd["memory_attention.norm.weight"].numpy()).all()
