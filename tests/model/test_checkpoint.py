"""Checkpoint formats, exact Meta key layout, and clear errors for bad files."""

from __future__ import annotations

import json
import os

import pytest
import torch

from conftest import shared_path
from sam_pets.model import (
    CheckpointError,
    build_model,
    load_model,
    read_checkpoint,
    save_checkpoint,
)
from sam_pets.model.checkpoint import meta_state_dict
from sam_pets.model.convert import HF_POINT_EMBED, HF_SHARED_PE, meta_to_hf_key


@pytest.mark.parametrize("size", ["tiny", "small", "base_plus"])
def test_meta_layout_matches_released_keys_exactly(size):
    ref = json.loads(
        shared_path(
            "reference", "sam2.1_checkpoint_keys", f"sam2.1_hiera_{size}.keys.json"
        ).read_text()
    )
    sd = meta_state_dict(build_model(size))
    assert {k: list(v.shape) for k, v in sd.items()} == ref["shapes"]
    assert list(sd) == list(ref["shapes"])  # Meta's registration order too
    assert sum(v.numel() for v in sd.values()) == ref["n_params"]


def test_hf_key_map_matches_reference_table():
    table = json.loads(shared_path("reference", "sam2.1_meta_to_hf_keys_tiny.json").read_text())
    assert {k: meta_to_hf_key(k) for k in table} == table


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_sam_pets_round_trip_keeps_config_and_metadata(tmp_path):
    model = build_model("test", seed=1)
    path = save_checkpoint(model, tmp_path / "m.pt", metadata={"train": {"steps": 5}})
    ckpt = read_checkpoint(path)
    assert ckpt.format == "sam-pets" and ckpt.config == model.cfg
    assert ckpt.metadata["train"] == {"steps": 5} and "sam_pets_version" in ckpt.metadata
    assert _same_weights(load_model(path), model)


def test_save_refuses_to_overwrite(tmp_path):
    model = build_model("test")
    save_checkpoint(model, tmp_path / "m.pt")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        save_checkpoint(model, tmp_path / "m.pt")
    save_checkpoint(model, tmp_path / "m.pt", overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temp files left behind


@pytest.fixture(scope="module")
def meta_tiny_file(tmp_path_factory):
    """A file in Meta's release layout ({"model": state_dict}, all 471 keys, no metadata)."""
    model = build_model("tiny", seed=2)
    sd = meta_state_dict(model)
    path = tmp_path_factory.mktemp("meta") / "sam2.1_hiera_tiny.pt"
    torch.save({"model": sd}, path)
    return path, sd


def test_meta_file_detected_and_video_keys_kept(meta_tiny_file, tmp_path):
    path, sd = meta_tiny_file
    ckpt = read_checkpoint(path)
    assert ckpt.format == "meta" and ckpt.config.name == "sam2.1_hiera_tiny"
    assert len(ckpt.image_state) == 311 and len(ckpt.video_state) == 160
    model = load_model(path)
    out = save_checkpoint(model, tmp_path / "finetuned.pt")
    again = torch.load(out, weights_only=True)["model"]
    assert list(again) == list(sd)
    assert all(torch.equal(again[k], sd[k]) for k in sd)  # video tensors carried through


def test_huggingface_safetensors(meta_tiny_file, tmp_path):
    from safetensors.torch import save_file

    _, sd = meta_tiny_file
    hf = {}
    for k, v in sd.items():
        if k.startswith("sam_prompt_encoder.point_embeddings"):
            continue
        hf[meta_to_hf_key(k)] = v.contiguous()
    hf[HF_POINT_EMBED] = torch.cat(
        [sd[f"sam_prompt_encoder.point_embeddings.{i}.weight"] for i in range(4)]
    )
    hf[HF_SHARED_PE] = sd["sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"].clone()
    save_file(hf, str(tmp_path / "model.safetensors"))
    ckpt = read_checkpoint(tmp_path / "model.safetensors")
    assert ckpt.format == "huggingface" and ckpt.config.name == "sam2.1_hiera_tiny"
    model = load_model(tmp_path / "model.safetensors")
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), k


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ.get('EVIL_MARKER', '/tmp/x')}",))


def test_pickle_that_runs_code_is_refused(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("EVIL_MARKER", str(marker))
    path = tmp_path / "evil.pt"
    torch.save({"model": {"a": torch.zeros(1)}, "x": _Evil()}, path)
    with pytest.raises(CheckpointError, match="refused to load") as e:
        load_model(path)
    assert str(path) in str(e.value)
    # the detail names what was refused, not torch's advice to retry with weights_only=False
    assert "system" in str(e.value) and "weights_only` set to `False`" not in str(e.value)
    assert "\n" not in str(e.value)
    assert not marker.exists()


def test_truncated_file(tmp_path):
    model = build_model("test")
    good = save_checkpoint(model, tmp_path / "good.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model(bad)


@pytest.mark.parametrize("content", [b"hello world, not a model", b""])
def test_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "notes.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=str(path.name)):
        load_model(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="file not found"):
        load_model(tmp_path / "nope.pt")


def test_wrong_architecture(tmp_path):
    path = tmp_path / "resnet.pt"
    torch.save({"model": {"conv1.weight": torch.zeros(64, 3, 7, 7)}}, path)
    with pytest.raises(CheckpointError, match="not a SAM 2 checkpoint"):
        load_model(path)


def test_missing_and_unexpected_keys_are_named(tmp_path):
    sd = meta_state_dict(build_model("test"))
    del sd["sam_mask_decoder.iou_token.weight"]
    sd["sam_mask_decoder.bogus.weight"] = torch.zeros(3)
    path = tmp_path / "broken.pt"
    torch.save({"model": sd, "sam_pets": {"config": build_model("test").cfg.to_dict()}}, path)
    with pytest.raises(CheckpointError) as e:
        load_model(path)
    msg = str(e.value)
    assert "sam_mask_decoder.iou_token.weight" in msg and "sam_mask_decoder.bogus.weight" in msg
    assert str(path) in msg


def test_shape_mismatch_is_named(tmp_path):
    model = build_model("test")
    sd = meta_state_dict(model)
    sd["no_mem_embed"] = torch.zeros(1, 1, 7)
    path = tmp_path / "shape.pt"
    torch.save({"model": sd, "sam_pets": {"config": model.cfg.to_dict()}}, path)
    with pytest.raises(CheckpointError, match=r"no_mem_embed: file \(1, 1, 7\)"):
        load_model(path)


@pytest.mark.parametrize("version", ["2.0", "2.1"])
def test_version_detected_from_video_keys(tmp_path, version):
    model = build_model("sam2_hiera_tiny" if version == "2.0" else "tiny", device="meta")
    assert model.cfg.version == version


def test_unknown_keys_are_refused_but_meta_video_keys_kept(meta_tiny_file, tmp_path):
    _, sd = meta_tiny_file
    path = tmp_path / "extra.pt"
    torch.save(
        {"model": {**sd, "foo.bar": torch.zeros(1), "memory_attention.bogus": sd["no_obj_ptr"]}},
        path,
    )
    with pytest.raises(CheckpointError, match=r"2 unexpected keys.*'foo\.bar'") as e:
        read_checkpoint(path)
    assert str(path) in str(e.value)
    # every video-only key of the released SAM 2.1 checkpoints is still kept, by name
    ref = json.loads(
        shared_path(
            "reference", "sam2.1_checkpoint_keys", "sam2.1_hiera_tiny.keys.json"
        ).read_text()
    )
    video = [
        k for k in ref["shapes"] if not k.startswith(("image_encoder.", "sam_", "no_mem_embed"))
    ]
    assert sorted(read_checkpoint(meta_tiny_file[0]).video_state) == sorted(video)


def test_torchscript_archive_is_refused_without_torch_warning(tmp_path):
    import warnings

    path = tmp_path / "scripted.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit itself is deprecated
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError, match="scripted.pt"):
            read_checkpoint(path)
    assert [str(w.message) for w in caught if issubclass(w.category, UserWarning)] == []


def test_a_resume_state_is_named_as_one(tmp_path):
    """A run's state.pt (a LoRA run's holds LoRA keys) once failed on 'unexpected keys'."""
    model = build_model("test")
    path = tmp_path / "state.pt"
    state = {"model": model.state_dict(), "optimizer": {"state": {}}, "step": 3}
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="resume state, not a model.*best.pt"):
        read_checkpoint(path)
