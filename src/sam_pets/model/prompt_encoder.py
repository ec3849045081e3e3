"""Prompt encoder: points, box corners and mask prompts to sparse and dense embeddings."""

from __future__ import annotations

import math

import torch
from torch import nn

from sam_pets.model.layers import LayerNorm2d

# Point labels understood by the prompt encoder.
LABEL_PAD, LABEL_NEG, LABEL_POS, LABEL_BOX_TL, LABEL_BOX_BR = -1, 0, 1, 2, 3


class PositionEmbeddingRandom(nn.Module):
    """Random Fourier features of normalised (x, y) coordinates."""

    def __init__(self, num_pos_feats: int) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, num_pos_feats))

    def encode(self, coords01: torch.Tensor) -> torch.Tensor:
        """Encode coordinates in [0, 1], shape (..., 2) in (x, y) order -> (..., 2 * F)."""
        c = (2 * coords01 - 1) @ self.positional_encoding_gaussian_matrix
        c = 2 * math.pi * c
        return torch.cat([torch.sin(c), torch.cos(c)], dim=-1)

    def dense(self, h: int, w: int) -> torch.Tensor:
        """Encoding of the centres of an h x w grid -> (1, 2F, h, w)."""
        dev = self.positional_encoding_gaussian_matrix.device
        grid = torch.ones((h, w), device=dev, dtype=torch.float32)
        y = (grid.cumsum(dim=0) - 0.5) / h
        x = (grid.cumsum(dim=1) - 0.5) / w
        return self.encode(torch.stack([x, y], dim=-1)).permute(2, 0, 1).unsqueeze(0)


class PromptEncoder(nn.Module):
    """Encode prompts for the mask decoder.

    Args:
        embed_dim: Prompt embedding width (256 for Meta's models).
        embedding_size: Side of the image embedding grid (64 for 1024 input).
        input_size: Side of the model input in pixels (1024).
        mask_in_chans: Hidden channels of the mask-prompt downscaler (16).
    """

    def __init__(self, embed_dim: int, embedding_size: int, input_size: int, mask_in_chans: int):
        super().__init__()
        self.embed_dim = embed_dim
        self.embedding_size = embedding_size
        self.input_size = input_size
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        c = mask_in_chans
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, c // 4, kernel_size=2, stride=2),
            LayerNorm2d(c // 4),
            nn.GELU(),
            nn.Conv2d(c // 4, c, kernel_size=2, stride=2),
            LayerNorm2d(c),
            nn.GELU(),
            nn.Conv2d(c, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)
        self._dense_pe: tuple | None = None

    def get_dense_pe(self) -> torch.Tensor:
        """Positional encoding of the image embedding grid, (1, D, E, E); cached in eval."""
        g = self.pe_layer.positional_encoding_gaussian_matrix
        key = (g.device, g.dtype, g._version)
        if self._dense_pe is not None and self._dense_pe[0] == key and not torch.is_grad_enabled():
            return self._dense_pe[1]
        pe = self.pe_layer.dense(self.embedding_size, self.embedding_size)
        if not torch.is_grad_enabled():
            self._dense_pe = (key, pe)
        return pe

    def embed_points(self, points: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        """Embed points (B, N, 2) in model-input pixels (x, y) with labels (B, N) -> (B, N', D).

        ``pad`` appends one "not a point" token, as SAM 2 always does when no box tensor is given.
        """
        points = points + 0.5  # pixel centre
        if pad:
            b = points.shape[0]
            points = torch.cat([points, points.new_zeros(b, 1, 2)], dim=1)
            labels = torch.cat([labels, labels.new_full((b, 1), LABEL_PAD)], dim=1)
        emb = self.pe_layer.encode(points.float() / self.input_size)  # (B, N', D)
        lab = labels.unsqueeze(-1)
        emb = torch.where(
            lab == LABEL_PAD, torch.zeros_like(emb) + self.not_a_point_embed.weight, emb
        )
        for k in range(4):
            emb = torch.where(lab == k, emb + self.point_embeddings[k].weight, emb)
        return emb

    def embed_masks(self, masks: torch.Tensor) -> torch.Tensor:
        """Embed mask-prompt logits (B, 1, 4E, 4E) -> dense embedding (B, D, E, E)."""
        return self.mask_downscaling(masks)

    def mask_factors(self, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`embed_masks` as factors: tokens ``H @ W + c`` with H (B, E*E, r).

        The embedding ends in a 1x1 conv from r channels (16 for SAM 2), so its E*E tokens
        are a rank-r product plus the conv's bias; returns ``(H, W (r, D), c (D,))``.
        """
        *body, last = self.mask_downscaling
        h = masks
        for module in body:
            h = module(h)
        w = last.weight.flatten(1)  # (D, r)
        return h.flatten(2).transpose(1, 2), w.t(), last.bias

    def forward(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None,
        masks: torch.Tensor | None,
        batch_size: int = 1,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return sparse (B, N', D) and dense (B, D, E, E) embeddings.

        Args:
            points: (coords (B, N, 2) in model-input pixels, labels (B, N)); box corners are
                points with labels 2 and 3 placed first. ``None`` for no sparse prompt.
            masks: mask-prompt logits (B, 1, 4E, 4E) or ``None``.
            batch_size: B when both prompts are ``None``.
        """
        if points is not None:
            bs = points[0].shape[0]
        elif masks is not None:
            bs = masks.shape[0]
        else:
            bs = batch_size
        w = self.no_mask_embed.weight
        if points is not None:
            sparse = self.embed_points(points[0], points[1], pad=True)
        else:
            sparse = w.new_empty((bs, 0, self.embed_dim))
        if masks is not None:
            dense = self.embed_masks(masks)
        else:
            e = self.embedding_size
            dense = w.reshape(1, -1, 1, 1).expand(bs, -1, e, e)
        return sparse, dense
