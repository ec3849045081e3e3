"""Read and write SAM 2 checkpoints: Meta ``.pt``, Hugging Face safetensors, sam-pets files.

sam-pets writes Meta's layout (``{"model": state_dict}`` with *all* keys, video-only ones
included) plus a ``"sam_pets"`` entry holding the config, package version and training
metadata.  Meta's ``build_sam2`` reads only ``["model"]``, so these files load there too.
"""

from __future__ import annotations

import io
import os
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sam_pets._atomic import atomic_write_bytes
from sam_pets.model.build import build_model
from sam_pets.model.config import VARIANTS, Sam2Config
from sam_pets.model.convert import (
    hf_to_meta_state_dict,
    init_video_state,
    is_image_key,
    is_video_key,
    looks_like_hf,
    meta_key_order,
    video_key_shapes,
)
from sam_pets.model.sam2 import Sam2Image

FORMAT_META = "meta"
FORMAT_HF = "huggingface"
FORMAT_SAM_PETS = "sam-pets"


class CheckpointError(ValueError):
    """A checkpoint file could not be used; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


@dataclass
class Checkpoint:
    """A checkpoint read into memory, with Meta key names.

    Attributes:
        path: The file it came from.
        format: ``"meta"``, ``"huggingface"`` or ``"sam-pets"``.
        config: The model configuration (stored or detected from the tensor shapes).
        image_state: Image-path tensors, Meta names.
        video_state: Video-only tensors (kept to be written back), Meta names.
        metadata: sam-pets metadata (version, training info), empty for foreign files.
    """

    path: str
    format: str
    config: Sam2Config
    image_state: dict[str, torch.Tensor]
    video_state: dict[str, torch.Tensor] = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)


def torch_load_file(path: str | os.PathLike) -> object:
    """``torch.load(path, weights_only=True)`` on the CPU, every failure as a CheckpointError.

    Torch's own warnings on this path (e.g. about a TorchScript archive) are silenced: the
    error that follows says what is wrong.

    Raises:
        CheckpointError: missing, foreign, truncated or corrupt file, or a pickle holding
            objects other than tensors and plain containers.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "file not found" if not path.exists() else "not a file")
    with open(path, "rb") as f:
        head = f.read(4)
    # torch.save writes a zip archive (PK..); very old files are a bare pickle (0x80 = protocol)
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        raise CheckpointError(
            path, "not a PyTorch checkpoint or safetensors file (unrecognised content)"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            path,
            "refused to load: the file contains pickled Python objects other than tensors "
            f"(weights_only=True); it may run code. Details: {_unpickling_detail(e)}",
        ) from None
    except Exception as e:  # torch.load raises many types for garbage input
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(
            path, f"not a readable PyTorch checkpoint (truncated or corrupt?): {first}"
        ) from None


def _unpickling_detail(error: Exception) -> str:
    """The line of torch's weights-only refusal that names what it refused.

    Its first lines are generic (and suggest ``weights_only=False``, which sam-pets never
    uses); the specific line ("unsupported GLOBAL posix.system ...") comes after them.
    """
    generic = ("Weights only load failed", "Check the documentation", "Please file an issue")
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    specific = [line for line in lines if not line.startswith(generic)]
    return (specific or lines or [type(error).__name__])[0]


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(path, f"not a readable safetensors file: {e}") from None


def _trunk_signature(state: dict[str, torch.Tensor]) -> tuple[int, int, tuple[int, ...]]:
    pos = state.get("image_encoder.trunk.pos_embed")
    if pos is None:
        raise KeyError("image_encoder.trunk.pos_embed")
    depth = len({k.split(".")[3] for k in state if k.startswith("image_encoder.trunk.blocks.")})
    return int(pos.shape[1]), depth, tuple(pos.shape[2:])


def detect_config(state: dict[str, torch.Tensor], path: str = "<state_dict>") -> Sam2Config:
    """Find the released SAM 2 config whose shapes match a Meta-named state dict."""
    try:
        sig = _trunk_signature(state)
    except KeyError:
        raise CheckpointError(
            path, "not a SAM 2 checkpoint: no 'image_encoder.trunk.pos_embed' tensor"
        ) from None
    version = "2.1" if "no_obj_embed_spatial" in state else "2.0"
    dec = state.get("sam_mask_decoder.iou_token.weight")
    dim = int(dec.shape[1]) if dec is not None else 256
    for cfg in VARIANTS.values():
        t = cfg.trunk
        if (t.embed_dim, t.depth, t.window_pos_embed_bkg_spatial_size) == sig and (
            cfg.decoder.dim == dim
        ):
            if cfg.version == version or cfg.name in ("test", "cpu_small"):
                return cfg
    # Image-only files (e.g. HF Sam2Model) carry no video keys: fall back to 2.1 naming.
    for cfg in VARIANTS.values():
        t = cfg.trunk
        if (t.embed_dim, t.depth, t.window_pos_embed_bkg_spatial_size) == sig:
            return cfg
    raise CheckpointError(
        path,
        f"unknown SAM 2 architecture: trunk embed_dim={sig[0]}, {sig[1]} blocks, pos_embed "
        f"{sig[2]}; pass the config explicitly",
    )


def read_checkpoint(path: str | os.PathLike, config: Sam2Config | None = None) -> Checkpoint:
    """Read any supported checkpoint file; raise :class:`CheckpointError` on bad input."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "file not found" if not path.exists() else "not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(path, "file is empty")
    metadata: dict = {}
    if path.suffix == ".safetensors" or _is_safetensors(path):
        raw = _load_safetensors(path)
        fmt = FORMAT_HF
    else:
        obj = torch_load_file(path)
        if not isinstance(obj, dict):
            raise CheckpointError(path, f"expected a dict of tensors, found {type(obj).__name__}")
        if "optimizer" in obj and "step" in obj:
            raise CheckpointError(
                path,
                "a training run's resume state, not a model: give the run's best.pt or "
                "last.pt (or continue the run with train --resume)",
            )
        if "model" in obj and isinstance(obj["model"], dict):
            raw = obj["model"]
            metadata = obj.get("sam_pets") or {}
            fmt = FORMAT_SAM_PETS if metadata else FORMAT_META
        elif obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            raw = obj
            fmt = FORMAT_HF if looks_like_hf(obj) else FORMAT_META
        else:
            raise CheckpointError(
                path, "no 'model' state dict found (keys: " + ", ".join(map(str, obj)) + ")"
            )
    bad = [k for k, v in raw.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(path, f"non-tensor entries in the state dict: {bad[:5]}")
    if fmt == FORMAT_HF:
        raw = _hf_to_meta(raw, path)
    if config is None and metadata.get("config"):
        try:
            config = Sam2Config.from_dict(metadata["config"])
        except (TypeError, ValueError) as e:
            raise CheckpointError(path, f"stored sam-pets config is invalid: {e}") from None
    if config is None:
        config = detect_config(raw, str(path))
    image = {k: v for k, v in raw.items() if is_image_key(k)}
    video = {k: v for k, v in raw.items() if is_video_key(k)}
    unknown = [k for k in raw if k not in image and k not in video]
    if unknown:
        raise CheckpointError(
            path,
            f"{len(unknown)} unexpected keys (neither SAM 2 image nor video weights), "
            f"first: {unknown[:5]}",
        )
    return Checkpoint(str(path), fmt, config, image, video, metadata)


def _is_safetensors(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(9)
    # safetensors: 8-byte little-endian header length, then a JSON object.
    return len(head) == 9 and head[8:9] == b"{"


def _hf_to_meta(raw: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    depth = len({k.split(".")[3] for k in raw if k.startswith("vision_encoder.backbone.blocks.")})
    # Candidate Meta keys: the image keys of a model with this many blocks + all video keys.
    candidates: list[str] = []
    for cfg in VARIANTS.values():
        if cfg.trunk.depth == depth and cfg.decoder.dim == 256:
            candidates = list(build_model(cfg, device="meta").state_dict())
            break
    if not candidates:
        raise CheckpointError(path, f"unknown Hugging Face SAM 2 architecture ({depth} blocks)")
    groups = video_key_shapes("2.1")
    candidates += [k for g in groups.values() for k in g]
    out, unused = hf_to_meta_state_dict(raw, candidates)
    if unused:
        raise CheckpointError(path, f"unexpected Hugging Face keys: {unused[:5]}")
    return out


def load_model(
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    config: Sam2Config | None = None,
) -> Sam2Image:
    """Build the model described by a checkpoint and load its weights strictly.

    Raises:
        CheckpointError: unreadable file, unknown architecture, missing or unexpected keys,
            shape mismatch; the message names the file and the first offending keys.
    """
    ckpt = read_checkpoint(path, config)
    return model_from_checkpoint(ckpt, device)


def model_from_checkpoint(ckpt: Checkpoint, device: str | torch.device = "cpu") -> Sam2Image:
    """Instantiate and strictly load a model from a :class:`Checkpoint`."""
    model = build_model(ckpt.config, device="cpu")
    expected = model.state_dict()
    missing = [k for k in expected if k not in ckpt.image_state]
    unexpected = [k for k in ckpt.image_state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys, first: {missing[:5]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys, first: {unexpected[:5]}")
        raise CheckpointError(
            ckpt.path, f"does not match config {ckpt.config.name}: " + "; ".join(parts)
        )
    wrong = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in ckpt.image_state.items()
        if v.shape != expected[k].shape
    ]
    if wrong:
        raise CheckpointError(
            ckpt.path, f"shape mismatch for config {ckpt.config.name}: {wrong[:5]}"
        )
    # fp16/bf16 storage (e.g. the built-in model) computes in float32 like every other model
    state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt.image_state.items()}
    model.load_state_dict(state, strict=True)
    model.extra_state = dict(ckpt.video_state)
    model.metadata = dict(ckpt.metadata)
    model.source = ckpt.path
    return model.to(device).eval()


def meta_state_dict(model: Sam2Image) -> dict[str, torch.Tensor]:
    """Full Meta-layout state dict: image weights + video tensors, in Meta's key order.

    Video tensors come from the checkpoint the model was loaded from; a model that never had
    any (random init, non-Meta config) gets freshly initialised ones when its decoder width is
    Meta's (256), so the file stays loadable by Meta's ``build_sam2``.
    """
    image = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    cfg = model.cfg
    video = dict(model.extra_state)
    if not video and cfg.decoder.dim == 256:
        video = init_video_state(cfg.version)
    if cfg.decoder.dim != 256:
        return {**image, **video}
    order = meta_key_order(list(image), cfg.version)
    merged = {**image, **video}
    ordered = {k: merged[k] for k in order if k in merged}
    ordered.update({k: v for k, v in merged.items() if k not in ordered})
    return ordered


def save_checkpoint(
    model: Sam2Image,
    path: str | os.PathLike,
    metadata: dict | None = None,
    overwrite: bool = False,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write ``model`` in Meta layout plus sam-pets metadata, atomically.

    Args:
        model: The model to save.
        path: Destination ``.pt`` file.
        metadata: Extra metadata (training config, step, metrics...) stored under ``sam_pets``.
        overwrite: Replace an existing file; without it an existing file is an error.
        dtype: Store floating-point tensors in this dtype (``torch.float16`` halves the file);
            ``None`` keeps the model's own.  :func:`load_model` casts them back to float32.
    """
    from sam_pets import __version__

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists; refusing to overwrite")
    if dtype is not None and not dtype.is_floating_point:
        raise ValueError(f"storage dtype must be a floating-point dtype, got {dtype}")
    meta = {"config": model.cfg.to_dict(), "sam_pets_version": __version__}
    meta.update(metadata or {})
    state = meta_state_dict(model)
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    payload = {"model": state, "sam_pets": meta}
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())
    return path
