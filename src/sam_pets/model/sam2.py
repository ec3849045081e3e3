"""The SAM 2 image model: image encoder (Hiera + FPN neck), prompt encoder, mask decoder."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sam_pets.model.config import Sam2Config
from sam_pets.model.fast_decoder import PreparedImage, fast_decode, prepare_image
from sam_pets.model.hiera import Hiera
from sam_pets.model.mask_decoder import MaskDecoder, MaskOutput
from sam_pets.model.prompt_encoder import PromptEncoder

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class ImageFeatures:
    """Per-image features consumed by the decoder.

    Attributes:
        image_embed: Lowest-resolution embedding incl. ``no_mem_embed``, (B, D, E, E).
        feat_s0: High-res skip at 1/4 input resolution, (B, D/8, 4E, 4E).
        feat_s1: High-res skip at 1/8 input resolution, (B, D/4, 2E, 2E).
    """

    image_embed: torch.Tensor
    feat_s0: torch.Tensor
    feat_s1: torch.Tensor

    def to(self, *args, **kwargs) -> ImageFeatures:
        """Move/cast every tensor (same arguments as ``Tensor.to``)."""
        return ImageFeatures(*(t.to(*args, **kwargs) for t in self.tensors()))

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The three tensors in field order."""
        return self.image_embed, self.feat_s0, self.feat_s1

    def index(self, i: int | slice) -> ImageFeatures:
        """Select image(s) ``i`` of the batch (keeps the batch dimension)."""
        sl = slice(i, i + 1) if isinstance(i, int) else i
        return ImageFeatures(*(t[sl] for t in self.tensors()))


class _NeckConv(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size=1)


class FpnNeck(nn.Module):
    """1x1 lateral convs (``convs.0`` takes the coarsest stage) + nearest top-down fusion."""

    def __init__(self, d_model: int, backbone_channel_list: list[int]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(_NeckConv(c, d_model) for c in backbone_channel_list)


class ImageEncoder(nn.Module):
    """Trunk + neck; keys ``image_encoder.trunk.*`` and ``image_encoder.neck.*``."""

    def __init__(self, cfg: Sam2Config) -> None:
        super().__init__()
        self.trunk = Hiera(cfg.trunk)
        self.neck = FpnNeck(cfg.decoder.dim, list(reversed(cfg.trunk.stage_dims)))


def _linear_cl(x_nchw: torch.Tensor, conv: nn.Conv2d, post: nn.Conv2d | None = None):
    """Apply 1x1 conv(s) to a channels-last-strided NCHW map as one matmul.

    With ``post`` the two 1x1 convs are composed into one (no non-linearity between them), so
    ``post(conv(x))`` costs a single small matmul.  Returns NCHW with channels-last strides.
    """
    w, b = conv.weight[:, :, 0, 0], conv.bias
    if post is not None:
        pw = post.weight[:, :, 0, 0]
        w, b = pw @ w, post.bias + pw @ b
    y = F.linear(x_nchw.permute(0, 2, 3, 1), w, b)  # (B, H, W, C_out)
    return y.permute(0, 3, 1, 2)  # (B, C_out, H, W)


class Sam2Image(nn.Module):
    """SAM 2 for single images.

    Parameter names follow Meta's checkpoints (``image_encoder``, ``sam_prompt_encoder``,
    ``sam_mask_decoder``, ``no_mem_embed``), so loading is a strict ``load_state_dict``.
    The video-only tensors of a Meta checkpoint are kept in :attr:`extra_state` (on the CPU)
    and written back on save.
    """

    def __init__(self, cfg: Sam2Config) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.decoder.dim
        self.image_encoder = ImageEncoder(cfg)
        self.sam_prompt_encoder = PromptEncoder(
            d, cfg.embedding_size, cfg.image_size, cfg.decoder.mask_in_chans
        )
        self.sam_mask_decoder = MaskDecoder(cfg.decoder)
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, d))
        self.extra_state: dict[str, torch.Tensor] = {}
        self.register_buffer(
            "pixel_mean",
            torch.tensor(IMAGENET_MEAN, device="cpu").view(1, 3, 1, 1),
            persistent=False,
        )
        self.register_buffer(
            "pixel_std", torch.tensor(IMAGENET_STD, device="cpu").view(1, 3, 1, 1), persistent=False
        )

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.no_mem_embed.device

    def normalize(self, images01: torch.Tensor) -> torch.Tensor:
        """ImageNet-normalise images in [0, 1], (B, 3, S, S)."""
        return (images01 - self.pixel_mean) / self.pixel_std

    def encode_image(self, images: torch.Tensor) -> ImageFeatures:
        """Encode normalised images (B, 3, S, S), S = ``cfg.image_size``.

        Returns the decoder inputs: embedding (B, D, S/16, S/16) with ``no_mem_embed`` added and
        the two high-res skips already passed through ``conv_s0`` / ``conv_s1``.
        """
        s = self.cfg.image_size
        if images.ndim != 4 or images.shape[1:] != (3, s, s):
            raise ValueError(
                f"expected images of shape (B, 3, {s}, {s}), got {tuple(images.shape)}"
            )
        stages = self.image_encoder.trunk(images)  # finest first
        convs = self.image_encoder.neck.convs
        dec = self.sam_mask_decoder
        top = _linear_cl(stages[3], convs[0].conv)  # (B, D, S/32, S/32)
        lateral = _linear_cl(stages[2], convs[1].conv)  # (B, D, S/16, S/16)
        top_down = F.interpolate(top, scale_factor=2.0, mode="nearest")
        embed = lateral + top_down + self.no_mem_embed.view(1, -1, 1, 1)
        feat_s1 = _linear_cl(stages[1], convs[2].conv, dec.conv_s1)  # (B, D/4, S/8, S/8)
        feat_s0 = _linear_cl(stages[0], convs[3].conv, dec.conv_s0)  # (B, D/8, S/4, S/4)
        return ImageFeatures(embed.contiguous(), feat_s0.contiguous(), feat_s1.contiguous())

    def decode(
        self,
        features: ImageFeatures,
        points: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = True,
    ) -> MaskOutput:
        """Predict masks for K prompt sets on one image (or K images with K prompt sets).

        Args:
            features: From :meth:`encode_image`, batch 1 (shared by all prompt sets) or K.
            points: (K, N, 2) float, (x, y) in model-input pixels (0..S); box corners are
                points with labels 2/3 placed first.
            labels: (K, N) int: 1 positive, 0 negative, 2/3 box corners, -1 padding.
            mask_input: (K, 1, S/4, S/4) mask-prompt logits (e.g. previous low-res output).
            multimask_output: 3 candidates per prompt set instead of 1.

        Returns:
            :class:`MaskOutput` with logits (K, M, S/4, S/4).
        """
        if (points is None) != (labels is None):
            raise ValueError("points and labels must be given together")
        if points is not None and (points.ndim != 3 or labels.shape != points.shape[:2]):
            raise ValueError(
                f"points must be (K, N, 2) and labels (K, N); got {tuple(points.shape)} and "
                f"{tuple(labels.shape)}"
            )
        k = (
            points.shape[0]
            if points is not None
            else (mask_input.shape[0] if mask_input is not None else features.image_embed.shape[0])
        )
        pts = (points, labels) if points is not None else None
        sparse, dense = self.sam_prompt_encoder(pts, mask_input, batch_size=k)
        return self.sam_mask_decoder(
            features.image_embed,
            self.sam_prompt_encoder.get_dense_pe(),
            sparse,
            dense,
            (features.feat_s0, features.feat_s1),
            multimask_output,
        )

    def prepare(self, features: ImageFeatures) -> PreparedImage:
        """Precompute the prompt-independent decoder work for one image (inference only)."""
        if features.image_embed.shape[0] != 1:
            raise ValueError("prepare() takes the features of a single image")
        pe = self.sam_prompt_encoder.get_dense_pe()
        no_mask = self.sam_prompt_encoder.no_mask_embed.weight[0]
        return prepare_image(self.sam_mask_decoder, pe, no_mask, *features.tensors())

    def decode_prepared(
        self,
        prepared: PreparedImage,
        points: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = True,
    ) -> MaskOutput:
        """Like :meth:`decode` for one image prepared by :meth:`prepare` (inference only).

        Gives the same outputs up to float rounding, several times faster on a CPU.
        """
        if (points is None) != (labels is None):
            raise ValueError("points and labels must be given together")
        k = (
            points.shape[0]
            if points is not None
            else (mask_input.shape[0] if mask_input is not None else 1)
        )
        pts = (points, labels) if points is not None else None
        encoder = self.sam_prompt_encoder
        sparse, _ = encoder(pts, None, batch_size=k)
        mask = encoder.mask_factors(mask_input) if mask_input is not None else None
        return fast_decode(self.sam_mask_decoder, prepared, sparse, mask, multimask_output)
