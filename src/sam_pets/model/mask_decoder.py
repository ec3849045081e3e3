"""Two-way transformer and mask decoder (with IoU and object-score heads)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sam_pets.model.config import DecoderConfig
from sam_pets.model.layers import MLP, Attention, LayerNorm2d


@dataclass
class MaskOutput:
    """Decoder outputs.

    Attributes:
        logits: Low-resolution mask logits (B, M, 4E, 4E), M = 3 (multimask) or 1.
        iou: Predicted IoU in [0, 1], (B, M).
        object_score: Object-presence logit (B, 1); > 0 means an object is present.
        tokens: Output mask tokens (B, M, D).
    """

    logits: torch.Tensor
    iou: torch.Tensor
    object_score: torch.Tensor
    tokens: torch.Tensor


class TwoWayAttentionBlock(nn.Module):
    """Self-attention of tokens, token->image and image->token cross-attention, token MLP."""

    def __init__(self, cfg: DecoderConfig, skip_first_layer_pe: bool) -> None:
        super().__init__()
        d, h, r = cfg.dim, cfg.num_heads, cfg.attention_downsample_rate
        self.self_attn = Attention(d, h)
        self.norm1 = nn.LayerNorm(d)
        self.cross_attn_token_to_image = Attention(d, h, downsample_rate=r)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = MLP(d, cfg.mlp_dim, d, 2, activation=nn.ReLU)
        self.norm3 = nn.LayerNorm(d)
        self.norm4 = nn.LayerNorm(d)
        self.cross_attn_image_to_token = Attention(d, h, downsample_rate=r)
        self.skip_first_layer_pe = skip_first_layer_pe

    def token_self_attention(self, queries: torch.Tensor, query_pe: torch.Tensor) -> torch.Tensor:
        """Step 1 of the block: self-attention among the tokens (B, Nq, D), then ``norm1``."""
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)  # layer 0: no residual
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        return self.norm1(queries)

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        query_pe: torch.Tensor,
        key_pe: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Update queries (B, Nq, D) and image keys (B, L, D); PEs have the same shapes."""
        queries = self.token_self_attention(queries, query_pe)
        q = queries + query_pe
        k = keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q, k, keys))
        queries = self.norm3(queries + self.mlp(queries))
        q = queries + query_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """SAM's two-way transformer between prompt tokens and image tokens."""

    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(cfg, skip_first_layer_pe=(i == 0)) for i in range(cfg.depth)
        )
        self.final_attn_token_to_image = Attention(
            cfg.dim, cfg.num_heads, downsample_rate=cfg.attention_downsample_rate
        )
        self.norm_final_attn = nn.LayerNorm(cfg.dim)

    def forward(
        self, image: torch.Tensor, image_pe: torch.Tensor, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the transformer.

        Args:
            image: Image embedding (B, D, E, E).
            image_pe: Its positional encoding (B, D, E, E).
            tokens: Output + prompt tokens (B, Nq, D); also used as their positional term.

        Returns:
            Updated tokens (B, Nq, D) and image tokens (B, E*E, D).
        """
        keys = image.flatten(2).transpose(1, 2)  # (B, L, D)
        key_pe = image_pe.flatten(2).transpose(1, 2)  # (B, L, D)
        queries = tokens
        for layer in self.layers:
            queries, keys = layer(queries, keys, tokens, key_pe)
        attn = self.final_attn_token_to_image(queries + tokens, keys + key_pe, keys)
        return self.norm_final_attn(queries + attn), keys


class MaskDecoder(nn.Module):
    """Predict masks, IoU and object presence from image and prompt embeddings."""

    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        d = cfg.dim
        self.cfg = cfg
        self.num_mask_tokens = cfg.num_multimask_outputs + 1
        self.transformer = TwoWayTransformer(cfg)
        self.iou_token = nn.Embedding(1, d)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, d)
        self.obj_score_token = nn.Embedding(1, d)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(d, d // 4, kernel_size=2, stride=2),
            LayerNorm2d(d // 4),
            nn.GELU(),
            nn.ConvTranspose2d(d // 4, d // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.conv_s0 = nn.Conv2d(d, d // 8, kernel_size=1)
        self.conv_s1 = nn.Conv2d(d, d // 4, kernel_size=1)
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(d, d, d // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(
            d,
            cfg.iou_head_hidden_dim,
            self.num_mask_tokens,
            cfg.iou_head_depth,
            sigmoid_output=True,
        )
        self.pred_obj_score_head = MLP(d, d, 1, 3)

    def upscale(
        self, src: torch.Tensor, high_res: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """Upscale image tokens (B, D, E, E) with the high-res skips -> (B, D/8, 4E, 4E)."""
        dc1, ln1, act1, dc2, act2 = self.output_upscaling
        feat_s0, feat_s1 = high_res
        x = act1(ln1(dc1(src) + feat_s1))  # (B, D/4, 2E, 2E)
        return act2(dc2(x) + feat_s0)  # (B, D/8, 4E, 4E)

    def forward(
        self,
        image_embed: torch.Tensor,
        image_pe: torch.Tensor,
        sparse: torch.Tensor,
        dense: torch.Tensor,
        high_res: tuple[torch.Tensor, torch.Tensor],
        multimask_output: bool,
        dynamic_multimask: bool = True,
    ) -> MaskOutput:
        """Decode masks.

        Args:
            image_embed: Image embedding incl. ``no_mem_embed``, (1 or B, D, E, E). With batch
                1 and B prompt sets it is shared (repeated) across the prompt sets.
            image_pe: Dense positional encoding (1, D, E, E).
            sparse: Sparse prompt embeddings (B, N, D).
            dense: Dense prompt embeddings (B, D, E, E).
            high_res: Skip features (feat_s0 (1|B, D/8, 4E, 4E), feat_s1 (1|B, D/4, 2E, 2E)).
            multimask_output: Return the 3 multimask candidates instead of one mask.
            dynamic_multimask: For single-mask output outside training, fall back to the best
                multimask candidate when token 0's mask is unstable (SAM 2 post-processing).
        """
        b = sparse.shape[0]
        out_tokens = torch.cat(
            [self.obj_score_token.weight, self.iou_token.weight, self.mask_tokens.weight], dim=0
        )
        tokens = torch.cat([out_tokens.unsqueeze(0).expand(b, -1, -1), sparse], dim=1)  # (B,Nq,D)
        if image_embed.shape[0] != b:
            image_embed = image_embed.expand(b, -1, -1, -1)
        src = image_embed + dense  # (B, D, E, E)
        pos = image_pe.expand(b, -1, -1, -1)
        _, c, h, w = src.shape
        hs, keys = self.transformer(src, pos, tokens)
        iou = self.iou_prediction_head(hs[:, 1])  # (B, 4)
        object_score = self.pred_obj_score_head(hs[:, 0])  # (B, 1)
        mask_tokens = hs[:, 2 : 2 + self.num_mask_tokens]  # (B, 4, D)

        single = not multimask_output
        dynamic = single and dynamic_multimask and not self.training
        idx = [0] if (single and not dynamic) else ([1, 2, 3] if multimask_output else [0, 1, 2, 3])
        hyper = torch.stack(
            [self.output_hypernetworks_mlps[i](mask_tokens[:, i]) for i in idx], dim=1
        )  # (B, M, D/8)
        up = self.upscale(keys.transpose(1, 2).reshape(b, c, h, w), high_res)  # (B, D/8, 4E, 4E)
        bb, cc, hh, ww = up.shape
        logits = (hyper @ up.reshape(bb, cc, hh * ww)).view(bb, -1, hh, ww)  # (B, M, 4E, 4E)
        iou = iou[:, idx]
        toks = mask_tokens[:, idx]
        if dynamic:
            logits, iou = self.select_stable(logits, iou)
            toks = toks[:, :1]
        return MaskOutput(logits, iou, object_score, toks)

    def select_stable(
        self, logits: torch.Tensor, iou: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Keep token 0's mask if stable, else the multimask candidate with the best IoU."""
        delta = self.cfg.dynamic_multimask_stability_delta
        flat = logits[:, 0].flatten(1)
        area_i = (flat > delta).sum(-1).float()
        area_u = (flat > -delta).sum(-1).float()
        stability = torch.where(area_u > 0, area_i / area_u, torch.ones_like(area_u))
        stable = stability >= self.cfg.dynamic_multimask_stability_thresh  # (B,)
        best = iou[:, 1:].argmax(-1) + 1  # (B,)
        choice = torch.where(stable, torch.zeros_like(best), best)
        rows = torch.arange(logits.shape[0], device=logits.device)
        return logits[rows, choice].unsqueeze(1), iou[rows, choice].unsqueeze(1)
