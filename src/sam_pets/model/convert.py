"""Key layouts of other SAM 2 implementations: Meta's video-only keys and Hugging Face names.

Meta's checkpoints hold the whole video model.  The image path uses 311+ of the keys; the
rest (memory attention/encoder, object pointers, ...) are listed here so that a checkpoint
written by sam-pets carries exactly the keys Meta's strict loader expects.
"""

from __future__ import annotations

import re

import torch

_IMAGE_PREFIXES = ("image_encoder.", "sam_prompt_encoder.", "sam_mask_decoder.", "no_mem_embed")


def is_image_key(key: str) -> bool:
    """True for keys used by the image path (``no_mem_embed`` included)."""
    return key.startswith(_IMAGE_PREFIXES)


def is_video_key(key: str) -> bool:
    """True for the video-only keys of Meta's SAM 2 / 2.1 checkpoints (kept, never used)."""
    return key in _VIDEO_KEYS


def video_key_shapes(version: str = "2.1", d: int = 256, mem_dim: int = 64) -> dict[str, tuple]:
    """Names and shapes of the video-only keys of a SAM 2 checkpoint, in Meta's order.

    The order is split in two groups: those before ``image_encoder.*`` and those after.
    Returned as one dict with the special ordering handled by :func:`meta_key_order`.
    """
    head: dict[str, tuple] = {"maskmem_tpos_enc": (7, 1, 1, mem_dim), "no_mem_pos_enc": (1, 1, d)}
    head["no_obj_ptr"] = (1, d)
    if version == "2.1":
        head["no_obj_embed_spatial"] = (1, mem_dim)
    mid: dict[str, tuple] = {"mask_downsample.weight": (1, 1, 4, 4), "mask_downsample.bias": (1,)}
    for i in range(4):
        p = f"memory_attention.layers.{i}."
        for att, kv in (("self_attn", d), ("cross_attn_image", mem_dim)):
            for proj, c_in in (("q_proj", d), ("k_proj", kv), ("v_proj", kv), ("out_proj", d)):
                mid[f"{p}{att}.{proj}.weight"] = (d, c_in)
                mid[f"{p}{att}.{proj}.bias"] = (d,)
        mid[f"{p}linear1.weight"], mid[f"{p}linear1.bias"] = (2048, d), (2048,)
        mid[f"{p}linear2.weight"], mid[f"{p}linear2.bias"] = (d, 2048), (d,)
        for n in (1, 2, 3):
            mid[f"{p}norm{n}.weight"], mid[f"{p}norm{n}.bias"] = (d,), (d,)
    mid["memory_attention.norm.weight"], mid["memory_attention.norm.bias"] = (d,), (d,)
    chans = [1, 4, 16, 64, d]
    for j in range(4):
        p = f"memory_encoder.mask_downsampler.encoder.{3 * j}"
        mid[f"{p}.weight"], mid[f"{p}.bias"] = (chans[j + 1], chans[j], 3, 3), (chans[j + 1],)
        p = f"memory_encoder.mask_downsampler.encoder.{3 * j + 1}"
        mid[f"{p}.weight"], mid[f"{p}.bias"] = (chans[j + 1],), (chans[j + 1],)
    mid["memory_encoder.mask_downsampler.encoder.12.weight"] = (d, d, 1, 1)
    mid["memory_encoder.mask_downsampler.encoder.12.bias"] = (d,)
    mid["memory_encoder.pix_feat_proj.weight"] = (d, d, 1, 1)
    mid["memory_encoder.pix_feat_proj.bias"] = (d,)
    for i in range(2):
        p = f"memory_encoder.fuser.layers.{i}."
        mid[p + "gamma"] = (d,)
        mid[p + "dwconv.weight"], mid[p + "dwconv.bias"] = (d, 1, 7, 7), (d,)
        mid[p + "norm.weight"], mid[p + "norm.bias"] = (d,), (d,)
        mid[p + "pwconv1.weight"], mid[p + "pwconv1.bias"] = (4 * d, d), (4 * d,)
        mid[p + "pwconv2.weight"], mid[p + "pwconv2.bias"] = (d, 4 * d), (d,)
    mid["memory_encoder.out_proj.weight"] = (mem_dim, d, 1, 1)
    mid["memory_encoder.out_proj.bias"] = (mem_dim,)
    tail: dict[str, tuple] = {}
    for i in range(3):
        tail[f"obj_ptr_proj.layers.{i}.weight"] = (d, d)
        tail[f"obj_ptr_proj.layers.{i}.bias"] = (d,)
    if version == "2.1":
        tail["obj_ptr_tpos_proj.weight"], tail["obj_ptr_tpos_proj.bias"] = (mem_dim, d), (mem_dim,)
    return {"head": head, "mid": mid, "tail": tail}


# SAM 2.1's names are a superset of SAM 2.0's; the names do not depend on the model size.
_VIDEO_KEYS = frozenset(k for g in video_key_shapes("2.1").values() for k in g)


def init_video_state(version: str = "2.1", d: int = 256, seed: int = 0) -> dict[str, torch.Tensor]:
    """Fresh video-only tensors for a model that never had any (e.g. trained from scratch).

    Norm weights are 1, biases 0, layer-scale ``gamma`` 1e-6 and everything else N(0, 0.02),
    close to Meta's own initialisation, so Meta's loader accepts the file and the image path
    is unaffected.
    """
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    groups = video_key_shapes(version, d)
    for group in groups.values():
        for key, shape in group.items():
            if key.endswith("gamma"):
                out[key] = torch.full(shape, 1e-6)
            elif key.endswith("bias"):
                out[key] = torch.zeros(shape)
            elif len(shape) == 1:  # norm weights
                out[key] = torch.ones(shape)
            else:
                out[key] = torch.randn(shape, generator=gen) * 0.02
    return out


def meta_key_order(image_keys: list[str], version: str = "2.1", d: int = 256) -> list[str]:
    """Full key order of a Meta checkpoint given the image keys in module order."""
    groups = video_key_shapes(version, d)
    head = list(groups["head"])
    encoder = [k for k in image_keys if k.startswith("image_encoder.")]
    decoder = [k for k in image_keys if k.startswith(("sam_prompt_encoder.", "sam_mask_decoder."))]
    return (
        head[:1]
        + ["no_mem_embed"]
        + head[1:]
        + encoder
        + list(groups["mid"])
        + decoder
        + list(groups["tail"])
    )


# --- Hugging Face transformers (Sam2Model / Sam2VideoModel) key names -------------------------

_HF_SUBSTRINGS = [
    ("iou_prediction_head.layers.0", "iou_prediction_head.proj_in"),
    ("iou_prediction_head.layers.1", "iou_prediction_head.layers.0"),
    ("iou_prediction_head.layers.2", "iou_prediction_head.proj_out"),
    ("mask_decoder.output_upscaling.0", "mask_decoder.upscale_conv1"),
    ("mask_decoder.output_upscaling.1", "mask_decoder.upscale_layer_norm"),
    ("mask_decoder.output_upscaling.3", "mask_decoder.upscale_conv2"),
    ("mask_downscaling.0", "mask_embed.conv1"),
    ("mask_downscaling.1", "mask_embed.layer_norm1"),
    ("mask_downscaling.3", "mask_embed.conv2"),
    ("mask_downscaling.4", "mask_embed.layer_norm2"),
    ("mask_downscaling.6", "mask_embed.conv3"),
    ("dwconv", "depthwise_conv"),
    ("pwconv", "pointwise_conv"),
    ("fuser", "memory_fuser"),
    ("point_embeddings", "point_embed"),
    ("pe_layer.positional_encoding_gaussian_matrix", "shared_embedding.positional_embedding"),
    ("obj_ptr_tpos_proj", "temporal_positional_encoding_projection_layer"),
    ("no_obj_embed_spatial", "occlusion_spatial_embedding_parameter"),
    ("sam_prompt_encoder", "prompt_encoder"),
    ("sam_mask_decoder", "mask_decoder"),
    ("maskmem_tpos_enc", "memory_temporal_positional_encoding"),
    ("gamma", "scale"),
    ("image_encoder.neck", "vision_encoder.neck"),
    ("image_encoder", "vision_encoder.backbone"),
    ("pix_feat_proj", "feature_projection"),
    ("patch_embed.proj", "patch_embed.projection"),
    ("no_mem_embed", "no_memory_embedding"),
    ("no_mem_pos_enc", "no_memory_positional_encoding"),
    ("obj_ptr", "object_pointer"),
    (".norm", ".layer_norm"),
    ("trunk.", ""),
    ("out_proj", "o_proj"),
]
_HF_REGEX = [
    (r"(backbone\.blocks\.\d+\.mlp)\.layers\.0", r"\1.proj_in"),
    (r"(backbone\.blocks\.\d+\.mlp)\.layers\.1", r"\1.proj_out"),
    (r"(transformer\.layers\.\d+\.mlp)\.layers\.0", r"\1.proj_in"),
    (r"(transformer\.layers\.\d+\.mlp)\.layers\.1", r"\1.proj_out"),
    (
        r"(output_hypernetworks_mlps\.\d+|pred_obj_score_head|object_pointer_proj)\.layers\.0",
        r"\1.proj_in",
    ),
    (
        r"(output_hypernetworks_mlps\.\d+|pred_obj_score_head|object_pointer_proj)\.layers\.1",
        r"\1.layers.0",
    ),
    (
        r"(output_hypernetworks_mlps\.\d+|pred_obj_score_head|object_pointer_proj)\.layers\.2",
        r"\1.proj_out",
    ),
    (r"neck\.convs\.(\d+)\.conv\.", r"neck.convs.\1."),
    (r"memory_encoder\.o_proj", "memory_encoder.projection"),
    (
        r"mask_downsampler\.encoder\.(0|3|6|9)\.",
        lambda m: f"mask_downsampler.layers.{int(m.group(1)) // 3}.conv.",
    ),
    (
        r"mask_downsampler\.encoder\.(1|4|7|10)\.",
        lambda m: f"mask_downsampler.layers.{int(m.group(1)) // 3}.layer_norm.",
    ),
    (r"mask_downsampler\.encoder\.12\.", "mask_downsampler.final_conv."),
]


def meta_to_hf_key(key: str) -> str:
    """Hugging Face name of a Meta key (before HF merges the four point embeddings)."""
    for old, new in _HF_SUBSTRINGS:
        key = key.replace(old, new)
    for pattern, repl in _HF_REGEX:
        key = re.sub(pattern, repl, key)
    return key


HF_POINT_EMBED = "prompt_encoder.point_embed.weight"
HF_SHARED_PE = "shared_image_embedding.positional_embedding"


def hf_to_meta_state_dict(
    hf: dict[str, torch.Tensor], meta_keys: list[str]
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename a Hugging Face SAM 2 state dict to Meta names.

    Args:
        hf: The HF tensors.
        meta_keys: Every Meta key the target model may hold (image + video keys).

    Returns:
        The renamed state dict and the HF keys that matched nothing.
    """
    inverse = {meta_to_hf_key(k): k for k in meta_keys}
    out: dict[str, torch.Tensor] = {}
    unused: list[str] = []
    for key, t in hf.items():
        if key == HF_POINT_EMBED and t.ndim == 2:
            for i in range(t.shape[0]):
                out[f"sam_prompt_encoder.point_embeddings.{i}.weight"] = t[i : i + 1].clone()
        elif key == HF_SHARED_PE:
            continue  # duplicate of the prompt encoder's Gaussian matrix
        elif key in inverse:
            out[inverse[key]] = t
        else:
            unused.append(key)
    return out, unused


def looks_like_hf(keys) -> bool:
    """True if the keys use Hugging Face SAM 2 names."""
    return any(k.startswith(("vision_encoder.", "prompt_encoder.", "mask_decoder.")) for k in keys)
