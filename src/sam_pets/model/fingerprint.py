"""A fingerprint of the weights that image features depend on (cache keys, shared embeddings)."""

from __future__ import annotations

import hashlib

import torch


def encoder_fingerprint(model) -> str:
    """Hash of what image features depend on.

    That is the config, the image-encoder weights, ``no_mem_embed`` and the decoder's
    ``conv_s0`` / ``conv_s1`` (the high-res skips pass through them). Fine-tuning the prompt
    encoder and the rest of the mask decoder keeps the fingerprint (as a fine-tune on cached
    embeddings does: no gradient reaches those convolutions), so cached embeddings stay
    valid across such a model swap.
    """
    h = hashlib.blake2b(digest_size=16)
    h.update(repr(getattr(model, "cfg", "")).encode())
    for name, t in model.image_encoder.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    h.update(model.no_mem_embed.detach().to("cpu", torch.float32).numpy().tobytes())
    # the high-res skips of the features pass through the decoder's conv_s0 / conv_s1
    dec = getattr(model, "sam_mask_decoder", None)
    for part in ("conv_s0", "conv_s1"):
        conv = getattr(dec, part, None)
        if conv is not None:
            for name, t in conv.state_dict().items():
                h.update(f"{part}.{name}".encode())
                h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def weights_fingerprint(model) -> str:
    """Hash of the config and every weight (e.g. to tell whether a run used the same model)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr(getattr(model, "cfg", "")).encode())
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()
