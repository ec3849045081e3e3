"""Hiera trunk of the SAM 2 image encoder (hierarchical windowed ViT with query pooling).

All tensors inside the trunk are channels-last: (B, H, W, C).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sam_pets.model.config import HieraConfig
from sam_pets.model.layers import MLP, DropPath, attention


def window_partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Cut (B, H, W, C) into non-overlapping windows, zero-padding bottom/right.

    Returns:
        windows of shape (B * nW, window, window, C) and the padded size (Hp, Wp).
    """
    b, h, w, c = x.shape
    pad_h, pad_w = (window - h % window) % window, (window - w % window) % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // window, window, wp // window, window, c)
    windows = x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, c)  # (B*nW, w, w, C)
    return windows, (hp, wp)


def window_unpartition(
    windows: torch.Tensor, window: int, padded_hw: tuple[int, int], hw: tuple[int, int]
) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B * nW, w, w, C) -> (B, H, W, C), padding cropped."""
    hp, wp = padded_hw
    h, w = hw
    b = windows.shape[0] // (hp * wp // window // window)
    x = windows.view(b, hp // window, wp // window, window, window, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)  # (B, Hp, Wp, C)
    if hp > h or wp > w:
        x = x[:, :h, :w, :].contiguous()
    return x


def _pool(x: torch.Tensor, stride: tuple[int, int]) -> torch.Tensor:
    """Max-pool a channels-last (B, H, W, C) map by ``stride`` (floor mode)."""
    x = F.max_pool2d(x.permute(0, 3, 1, 2), kernel_size=stride, stride=stride)
    return x.permute(0, 2, 3, 1)  # (B, H/s, W/s, C)


class MultiScaleAttention(nn.Module):
    """Attention of one Hiera block; optionally max-pools the queries (stage transitions)."""

    def __init__(
        self, dim: int, dim_out: int, num_heads: int, q_stride: tuple[int, int] | None
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_stride = q_stride
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend within each of the B windows of ``x`` (B, H, W, C); return (B, H', W', C_out)."""
        return self.proj(self.attend(x))

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        """Attention without the output projection ``proj`` (which is per token)."""
        b, h, w, _ = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1)  # (B, L, 3, h, c)
        q, k, v = qkv.unbind(2)  # each (B, L, h, c)
        if self.q_stride:
            q = _pool(q.reshape(b, h, w, -1), self.q_stride)
            h, w = q.shape[1:3]
            q = q.reshape(b, h * w, self.num_heads, -1)  # (B, L', h, c)
        out = attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return out.transpose(1, 2).reshape(b, h, w, -1)  # (B, H', W', C_out)


class MultiScaleBlock(nn.Module):
    """One Hiera block: (windowed) attention + MLP, pre-norm, with optional q-pooling."""

    def __init__(
        self,
        dim: int,
        dim_out: int,
        num_heads: int,
        mlp_ratio: float,
        drop_path: float,
        q_stride: tuple[int, int] | None,
        window_size: int,
    ) -> None:
        super().__init__()
        self.dim, self.dim_out = dim, dim_out
        self.window_size = window_size
        self.q_stride = q_stride
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = MultiScaleAttention(dim, dim_out, num_heads, q_stride)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim_out, eps=1e-6)
        self.mlp = MLP(dim_out, int(dim_out * mlp_ratio), dim_out, 2, activation=nn.GELU)
        if dim != dim_out:
            self.proj = nn.Linear(dim, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, H, W, dim) to (B, H', W', dim_out); H' = H / q_stride in pooling blocks."""
        if not (
            self.training or torch.is_grad_enabled() or torch.is_autocast_enabled(x.device.type)
        ):
            return self._forward_inference(x)
        shortcut = x
        x = self.norm1(x)
        if self.dim != self.dim_out:
            shortcut = _pool(self.proj(x), self.q_stride)  # projection of the *normed* input
        window = self.window_size
        if window > 0:
            h, w = x.shape[1:3]
            x, padded_hw = window_partition(x, window)
        x = self.attn(x)
        if self.q_stride:
            window = self.window_size // self.q_stride[0]
            h, w = shortcut.shape[1:3]
            padded_hw = (h + (window - h % window) % window, w + (window - w % window) % window)
        if self.window_size > 0:
            x = window_unpartition(x, window, padded_hw, (h, w))
        x = shortcut + self.drop_path(x)
        return x + self.drop_path(self.mlp(self.norm2(x)))

    # Windowed blocks on large maps run in horizontal bands of whole windows: every window is
    # independent, so the result is identical, and the intermediates (qkv, MLP hidden) stay
    # small enough to be reused by the allocator and to stay in cache.
    _BAND_TOKENS = 4096

    def _forward_inference(self, x: torch.Tensor) -> torch.Tensor:
        """Same maths as the training path with fewer passes over memory and no padded work.

        The output projection runs after un-windowing on the cropped tokens only, and the
        residual additions and GELU happen in place on tensors owned by this call.
        """
        b, h, w, _ = x.shape
        win = self.window_size
        if win == 0 or b * h * w <= 2 * self._BAND_TOKENS:
            return self._block(x)
        rows = max(win, (self._BAND_TOKENS // (b * w)) // win * win)
        if rows >= h:
            return self._block(x)
        return torch.cat([self._block(x[:, r : r + rows]) for r in range(0, h, rows)], dim=1)

    def _block(self, x: torch.Tensor) -> torch.Tensor:
        xn = self.norm1(x)
        shortcut = x
        if self.dim != self.dim_out:
            shortcut = _pool(self.proj(xn), self.q_stride)
        window = self.window_size
        if window > 0:
            xn, padded_hw = window_partition(xn, window)
        a = self.attn.attend(xn)
        h, w = shortcut.shape[1:3]
        if window > 0:
            if self.q_stride:
                window = window // self.q_stride[0]
                padded_hw = (h + (window - h % window) % window, w + (window - w % window) % window)
            a = window_unpartition(a, window, padded_hw, (h, w))
        y = self.attn.proj(a)
        y += shortcut
        fc1, fc2 = self.mlp.layers
        y2d = y.view(-1, y.shape[-1])
        for chunk in y2d.split(self._BAND_TOKENS):  # views: updated in place
            hid = torch.ops.aten.gelu_(fc1(self.norm2(chunk)))
            chunk.addmm_(hid, fc2.weight.t())
            chunk += fc2.bias
        return y


class PatchEmbed(nn.Module):
    """Conv 7x7 stride 4 patch embedding; output channels-last (B, H/4, W/4, C)."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=7, stride=4, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embed an image batch (B, 3, H, W)."""
        return self.proj(x).permute(0, 2, 3, 1)


class Hiera(nn.Module):
    """The Hiera trunk; returns the four stage outputs, finest first, as NCHW tensors."""

    def __init__(self, cfg: HieraConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.stage_ends = cfg.stage_ends
        q_pool_blocks = [e + 1 for e in self.stage_ends[:-1]][: cfg.q_pool]
        self.patch_embed = PatchEmbed(cfg.embed_dim)
        self.pos_embed = nn.Parameter(
            torch.zeros(1, cfg.embed_dim, *cfg.window_pos_embed_bkg_spatial_size)
        )
        w0 = cfg.window_spec[0]
        self.pos_embed_window = nn.Parameter(torch.zeros(1, cfg.embed_dim, w0, w0))
        rates = [cfg.drop_path_rate * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        dim, heads, stage = cfg.embed_dim, cfg.num_heads, 0
        self.blocks = nn.ModuleList()
        for i in range(cfg.depth):
            window = 0 if i in cfg.global_att_blocks else cfg.window_spec[stage]
            dim_out = dim
            if i - 1 in self.stage_ends:  # first block of a new stage
                dim_out, heads, stage = int(dim * cfg.dim_mul), int(heads * cfg.head_mul), stage + 1
            q_stride = cfg.q_stride if i in q_pool_blocks else None
            self.blocks.append(
                MultiScaleBlock(dim, dim_out, heads, cfg.mlp_ratio, rates[i], q_stride, window)
            )
            dim = dim_out
        self._pos_cache: dict[tuple, torch.Tensor] = {}

    def _pos_embed(self, hw: tuple[int, int]) -> torch.Tensor:
        """Absolute position embedding for a (h, w) token grid, channels-last (1, h, w, C)."""
        key = (hw, self.pos_embed.device, self.pos_embed.dtype, self.pos_embed._version)
        if not self.training and not torch.is_grad_enabled() and key in self._pos_cache:
            return self._pos_cache[key]
        pos = F.interpolate(self.pos_embed, size=hw, mode="bicubic")  # (1, C, h, w)
        win = self.pos_embed_window
        pos = pos + win.tile([1, 1, hw[0] // win.shape[2], hw[1] // win.shape[3]])
        pos = pos.permute(0, 2, 3, 1)  # (1, h, w, C)
        if not self.training and not torch.is_grad_enabled():
            self._pos_cache = {key: pos}
        return pos

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encode images (B, 3, S, S); return [(B, C_i, S/4/2^i, S/4/2^i) for i in 0..3]."""
        x = self.patch_embed(x)
        x = x + self._pos_embed(tuple(x.shape[1:3]))
        outs = []
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if i in self.stage_ends:
                outs.append(x.permute(0, 3, 1, 2))  # (B, C, H, W)
        return outs
