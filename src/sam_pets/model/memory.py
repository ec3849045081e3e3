"""SAM 2's memory path: memory encoder, memory attention, object pointers, tracking steps.

The image model (:class:`~sam_pets.model.sam2.Sam2Image`) segments one frame from prompts.
For a video or a stack, SAM 2 conditions each frame's image embedding on a memory bank
before decoding it:

- the **memory encoder** turns a frame's predicted mask and its image features into a
  64-channel memory map (mask downsampler, 1x1 projection of the features, two ConvNeXt
  blocks, 1x1 output projection) with a sine position encoding;
- **memory attention** (4 layers: self-attention with 2-D rotary encoding, cross-attention
  to the memories with rotary encoding on the spatial memory tokens, an MLP) fuses the
  current frame's features with the memories of the conditioning frames (those with user
  prompts), the last ``num_maskmem - 1`` tracked frames and the object pointers (the
  decoder's output token of earlier frames, projected, split into 4 tokens of 64 channels,
  with a temporal encoding);
- frames where the object is absent store the learned "no object" pointer and, in SAM 2.1,
  a "no object" spatial embedding is added to their memory.

:class:`Sam2Memory` holds the video-only weights under Meta's names, so a checkpoint's video
tensors load into it strictly. :class:`Tracker` runs one tracking step for a batch of
objects on one frame (``track_step``) from an image model and a memory module, following
SAM 2's inference semantics (``SAM2Base.track_step``) including the 2.0 / 2.1 differences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from sam_pets.model.layers import MLP, LayerNorm2d

# mask logits of frames where the object is absent
NO_OBJ_SCORE = -1024.0


# -- position encodings ----------------------------------------------------------------------
def sine_pe_2d(h: int, w: int, dim: int, device=None, temperature: float = 10000.0):
    """Normalised 2-D sine position encoding of an h x w grid, (1, dim, h, w).

    The first half of the channels encodes the row, the second the column; positions run
    from 1/n to 1 (times 2 pi), sine and cosine interleaved, as DETR's and SAM 2's.
    """
    half = dim // 2
    eps = 1e-6
    y = torch.arange(1, h + 1, dtype=torch.float32, device=device) / (h + eps) * 2 * math.pi
    x = torch.arange(1, w + 1, dtype=torch.float32, device=device) / (w + eps) * 2 * math.pi
    k = torch.arange(half, dtype=torch.float32, device=device)
    freq = temperature ** (2 * torch.div(k, 2, rounding_mode="floor") / half)

    def enc(v: torch.Tensor) -> torch.Tensor:  # (n,) -> (n, half), sin/cos interleaved
        a = v[:, None] / freq
        return torch.stack((a[:, 0::2].sin(), a[:, 1::2].cos()), dim=2).flatten(1)

    ey, ex = enc(y), enc(x)  # (h, half), (w, half)
    pos = torch.cat((ey[:, None, :].expand(h, w, half), ex[None, :, :].expand(h, w, half)), 2)
    return pos.permute(2, 0, 1).unsqueeze(0).contiguous()


def sine_pe_1d(pos: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """1-D sine encoding (n,) -> (n, dim): sines of all frequencies, then cosines."""
    half = dim // 2
    k = torch.arange(half, dtype=torch.float32, device=pos.device)
    freq = temperature ** (2 * torch.div(k, 2, rounding_mode="floor") / half)
    a = pos.float()[:, None] / freq
    return torch.cat([a.sin(), a.cos()], dim=-1)


def rope_angles(dim: int, side_x: int, side_y: int, theta: float = 10000.0):
    """Cosines and sines of 2-D axial rotary encoding, each (side_x * side_y, dim // 2).

    Channel pairs 0..dim/4-1 rotate with the column index, the next dim/4 with the row index,
    tokens in raster order.
    """
    n_freq = dim // 4
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 4)[:n_freq].float() / dim))
    t = torch.arange(side_x * side_y, dtype=torch.float32)
    tx, ty = t % side_x, torch.div(t, side_x, rounding_mode="floor")
    ang = torch.cat([torch.outer(tx, freqs), torch.outer(ty, freqs)], dim=-1)
    return ang.cos(), ang.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs of ``x`` (..., N, C) by angles given as (N, C/2) cos/sin."""
    xf = x.float().reshape(*x.shape[:-1], -1, 2)
    a, b = xf[..., 0], xf[..., 1]
    out = torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1)
    return out.flatten(-2).type_as(x)


# -- memory attention ------------------------------------------------------------------------
class RoPEAttention(nn.Module):
    """Single-head attention with 2-D rotary encoding of queries and (spatial) keys.

    Args:
        dim: Query / output width.
        kv_dim: Key / value input width (64 for cross-attention to memories).
        repeat_k: Keys are several frames of the query's grid (cross-attention): the
            rotation repeats for each.
    """

    def __init__(self, dim: int, kv_dim: int | None = None, repeat_k: bool = False):
        super().__init__()
        kv_dim = kv_dim or dim
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(kv_dim, dim)
        self.v_proj = nn.Linear(kv_dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.repeat_k = repeat_k
        self._angles: dict = {}

    def angles(self, n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotary cos/sin for a square grid of ``n`` tokens (cached per size and device)."""
        key = (n, str(device))
        if key not in self._angles:
            side = math.isqrt(n)
            if side * side != n:
                raise ValueError(f"rotary attention needs a square token grid, got {n} tokens")
            cos, sin = rope_angles(self.q_proj.out_features, side, side)
            self._angles[key] = (cos.to(device), sin.to(device))
        return self._angles[key]

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_k_exclude_rope: int = 0
    ) -> torch.Tensor:
        """Attend: q (B, Nq, D), k / v (B, Nk, Dkv) -> (B, Nq, D).

        The last ``num_k_exclude_rope`` keys (object pointers) are not rotated.
        """
        q, k, v = self.q_proj(q), self.k_proj(k), self.v_proj(v)
        cos, sin = self.angles(q.shape[-2], q.device)
        q = apply_rope(q, cos, sin)
        n_rope = k.shape[-2] - num_k_exclude_rope
        if n_rope > 0:
            if n_rope != q.shape[-2] and not self.repeat_k:
                raise ValueError("keys differ in length from the queries: repeat_k is off")
            r = n_rope // q.shape[-2]
            kr = apply_rope(k[:, :n_rope], cos.repeat(r, 1), sin.repeat(r, 1))
            k = torch.cat([kr, k[:, n_rope:]], dim=1)
        out = F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1))
        return self.out_proj(out.squeeze(1))


class MemoryAttentionLayer(nn.Module):
    """Pre-norm self-attention, cross-attention to the memories, ReLU MLP (Meta's names)."""

    def __init__(self, d: int = 256, mem_dim: int = 64, ffn: int = 2048):
        super().__init__()
        self.self_attn = RoPEAttention(d)
        self.cross_attn_image = RoPEAttention(d, mem_dim, repeat_k=True)
        self.linear1 = nn.Linear(d, ffn)
        self.linear2 = nn.Linear(ffn, d)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)

    def forward(self, x, memory, memory_pos, num_k_exclude_rope: int = 0):
        """X (B, N, D) current frame tokens; memory / memory_pos (B, M, mem_dim)."""
        h = self.norm1(x)
        x = x + self.self_attn(h, h, h)
        h = self.norm2(x)
        x = x + self.cross_attn_image(h, memory + memory_pos, memory, num_k_exclude_rope)
        h = self.norm3(x)
        return x + self.linear2(F.relu(self.linear1(h)))


class MemoryAttention(nn.Module):
    """Condition the current frame's features on the memory bank."""

    def __init__(self, d: int = 256, mem_dim: int = 64, num_layers: int = 4):
        super().__init__()
        self.layers = nn.ModuleList(MemoryAttentionLayer(d, mem_dim) for _ in range(num_layers))
        self.norm = nn.LayerNorm(d)

    def forward(self, curr, curr_pos, memory, memory_pos, num_obj_ptr_tokens: int = 0):
        """All batch-first: curr / curr_pos (B, N, D), memory / memory_pos (B, M, mem_dim)."""
        x = curr + 0.1 * curr_pos
        for layer in self.layers:
            x = layer(x, memory, memory_pos, num_obj_ptr_tokens)
        return self.norm(x)


# -- memory encoder --------------------------------------------------------------------------
class MaskDownSampler(nn.Module):
    """Mask (B, 1, S, S) -> (B, D, S/16, S/16): four stride-2 convs (x4 channels each), LN, GELU."""

    def __init__(self, d: int = 256):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for _ in range(4):
            c_out = c_in * 4
            layers += [
                nn.Conv2d(c_in, c_out, 3, stride=2, padding=1),
                LayerNorm2d(c_out),
                nn.GELU(),
            ]
            c_in = c_out
        layers.append(nn.Conv2d(c_in, d, kernel_size=1))
        self.encoder = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Downsample a mask (B, 1, S, S) to (B, D, S/16, S/16)."""
        return self.encoder(x)


class CXBlock(nn.Module):
    """ConvNeXt block: depth-wise 7x7 conv, LN, 4x MLP with GELU, layer scale, residual."""

    def __init__(self, d: int = 256):
        super().__init__()
        self.dwconv = nn.Conv2d(d, d, kernel_size=7, padding=3, groups=d)
        self.norm = LayerNorm2d(d, eps=1e-6)
        self.pwconv1 = nn.Linear(d, 4 * d)
        self.pwconv2 = nn.Linear(4 * d, d)
        self.gamma = nn.Parameter(1e-6 * torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One residual block on (B, D, H, W)."""
        h = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)
        h = self.gamma * self.pwconv2(F.gelu(self.pwconv1(h)))
        return x + h.permute(0, 3, 1, 2)


class Fuser(nn.Module):
    """ConvNeXt blocks that fuse the projected features with the downsampled mask."""

    def __init__(self, d: int = 256, num_layers: int = 2):
        super().__init__()
        self.layers = nn.ModuleList(CXBlock(d) for _ in range(num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the blocks in turn."""
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoder(nn.Module):
    """Image features (B, D, E, E) + mask (B, 1, S, S) -> memory (B, mem_dim, E, E) and its PE."""

    def __init__(self, d: int = 256, mem_dim: int = 64):
        super().__init__()
        self.mask_downsampler = MaskDownSampler(d)
        self.pix_feat_proj = nn.Conv2d(d, d, kernel_size=1)
        self.fuser = Fuser(d)
        self.out_proj = nn.Conv2d(d, mem_dim, kernel_size=1)

    def forward(self, pix_feat: torch.Tensor, mask: torch.Tensor):
        """``mask`` is already scaled (sigmoid or binary, x20 - 10)."""
        x = self.pix_feat_proj(pix_feat) + self.mask_downsampler(mask)
        x = self.out_proj(self.fuser(x))
        pos = sine_pe_2d(x.shape[-2], x.shape[-1], x.shape[1], x.device).to(x.dtype)
        return x, pos.expand(x.shape[0], -1, -1, -1)


# -- the video-only weights ------------------------------------------------------------------
@dataclass(frozen=True)
class MemoryConfig:
    """SAM 2's tracking settings (Meta's names; defaults are sam2.1's video predictor).

    ``version`` "2.0" drops the temporal encoding of object pointers and the "no object"
    spatial embedding. ``dynamic_multimask``, ``binarize_mask_from_pts_for_mem_enc`` match
    Meta's ``build_sam2_video_predictor(apply_postprocessing=True)``.
    """

    version: str = "2.1"
    num_maskmem: int = 7
    max_obj_ptrs_in_encoder: int = 16
    sigmoid_scale_for_mem_enc: float = 20.0
    sigmoid_bias_for_mem_enc: float = -10.0
    binarize_mask_from_pts_for_mem_enc: bool = True
    use_mask_input_as_output_without_sam: bool = True
    multimask_output_in_sam: bool = True
    multimask_output_for_tracking: bool = True
    multimask_min_pt_num: int = 0
    multimask_max_pt_num: int = 1
    dynamic_multimask: bool = True
    memory_temporal_stride_for_eval: int = 1
    max_cond_frames_in_attn: int = -1
    only_obj_ptrs_in_the_past_for_eval: bool = True

    @property
    def tpos_enc_in_obj_ptrs(self) -> bool:
        """2.1: object pointers carry a signed, projected temporal encoding."""
        return self.version == "2.1"


class Sam2Memory(nn.Module):
    """The video-only weights of a SAM 2 checkpoint, under Meta's key names."""

    def __init__(self, d: int = 256, mem_dim: int = 64, cfg: MemoryConfig | None = None):
        super().__init__()
        self.cfg = cfg or MemoryConfig()
        self.d, self.mem_dim = d, mem_dim
        n = self.cfg.num_maskmem
        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(n, 1, 1, mem_dim))
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, d))
        self.no_obj_ptr = nn.Parameter(torch.zeros(1, d))
        if self.cfg.version == "2.1":
            self.no_obj_embed_spatial = nn.Parameter(torch.zeros(1, mem_dim))
        self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        self.memory_attention = MemoryAttention(d, mem_dim)
        self.memory_encoder = MemoryEncoder(d, mem_dim)
        self.obj_ptr_proj = MLP(d, d, d, 3)
        if self.cfg.version == "2.1":
            self.obj_ptr_tpos_proj = nn.Linear(d, mem_dim)

    @classmethod
    def from_state(
        cls, state: dict[str, torch.Tensor], version: str = "2.1", d: int = 256, **settings
    ) -> Sam2Memory:
        """Build from Meta-named video tensors (a checkpoint's video part), strictly.

        Raises:
            ValueError: a tensor is missing, unexpected or of the wrong shape.
        """
        mem_dim = int(state["maskmem_tpos_enc"].shape[-1]) if "maskmem_tpos_enc" in state else 64
        num_maskmem = int(state["maskmem_tpos_enc"].shape[0]) if "maskmem_tpos_enc" in state else 7
        cfg = MemoryConfig(version=version, num_maskmem=num_maskmem, **settings)
        mem = cls(d, mem_dim, cfg)
        own = mem.state_dict()
        missing = sorted(set(own) - set(state))
        extra = sorted(set(state) - set(own))
        bad = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
        if missing or extra or bad:
            parts = []
            if missing:
                parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
            if extra:
                parts.append(f"{len(extra)} unexpected (e.g. {extra[0]})")
            if bad:
                k = bad[0]
                parts.append(
                    f"{len(bad)} of the wrong shape (e.g. {k}: {tuple(state[k].shape)}, "
                    f"expected {tuple(own[k].shape)})"
                )
            raise ValueError(f"video weights of SAM {version}: " + "; ".join(parts))
        mem.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
        return mem


# -- tracking --------------------------------------------------------------------------------
@dataclass
class FrameFeatures:
    """What tracking needs of one frame: raw embedding, its PE and the high-res skips."""

    embed: torch.Tensor  # (1, D, E, E) without no_mem_embed
    pos: torch.Tensor  # (1, D, E, E)
    feat_s0: torch.Tensor
    feat_s1: torch.Tensor


@dataclass
class FrameOutput:
    """One object's (or a batch of objects') result on one frame.

    ``pred_masks`` are low-res logits (B, 1, S/4, S/4); ``maskmem`` the memory features,
    stored in bfloat16 as SAM 2 does (None until encoded).
    """

    pred_masks: torch.Tensor
    obj_ptr: torch.Tensor
    object_score: torch.Tensor
    maskmem: torch.Tensor | None = None
    maskmem_pos: torch.Tensor | None = None
    extras: dict = field(default_factory=dict)


class Tracker:
    """SAM 2's tracking step on top of an image model and its memory weights."""

    def __init__(self, image_model, memory: Sam2Memory):
        self.image = image_model
        self.memory = memory
        self.cfg = memory.cfg
        self.size = image_model.cfg.image_size

    @torch.inference_mode()
    def frame_features(self, images: torch.Tensor) -> FrameFeatures:
        """Encode one normalised frame (1, 3, S, S)."""
        f = self.image.encode_image(images)
        embed = f.image_embed - self.image.no_mem_embed.view(1, -1, 1, 1)
        e = embed.shape[-1]
        pos = sine_pe_2d(e, e, embed.shape[1], embed.device)
        return FrameFeatures(embed, pos, f.feat_s0, f.feat_s1)

    # the decoder with SAM 2's video conventions
    def _heads(self, pix_feat, feats: FrameFeatures, points, labels, mask_input, multimask):
        b = pix_feat.shape[0]
        if points is None:
            points = pix_feat.new_zeros(b, 1, 2)
            labels = torch.full((b, 1), -1, dtype=torch.int32, device=pix_feat.device)
        if mask_input is not None and mask_input.shape[-2:] != (self.size // 4,) * 2:
            mask_input = F.interpolate(
                mask_input.float(),
                (self.size // 4,) * 2,
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
        enc = self.image.sam_prompt_encoder
        sparse, dense = enc((points, labels), mask_input, batch_size=b)
        s0, s1 = feats.feat_s0.expand(b, -1, -1, -1), feats.feat_s1.expand(b, -1, -1, -1)
        out = self.image.sam_mask_decoder(
            pix_feat,
            enc.get_dense_pe(),
            sparse,
            dense,
            (s0, s1),
            multimask,
            dynamic_multimask=self.cfg.dynamic_multimask,
        )
        obj = out.object_score  # (B, 1)
        present = obj > 0
        logits = torch.where(present[:, :, None, None], out.logits.float(), NO_OBJ_SCORE)
        tokens = out.tokens
        if multimask:
            best = out.iou.argmax(-1)
            idx = torch.arange(b, device=logits.device)
            low = logits[idx, best].unsqueeze(1)
            token = tokens[idx, best] if tokens.shape[1] > 1 else tokens[:, 0]
        else:
            low, token = logits[:, :1], tokens[:, 0]
        ptr = self.memory.obj_ptr_proj(token)
        lam = present.float()
        ptr = lam * ptr + (1 - lam) * self.memory.no_obj_ptr
        return low, ptr, obj

    def _mask_as_output(self, feats: FrameFeatures, mask: torch.Tensor):
        """A given mask (B, 1, S, S) becomes the output; its pointer from the decoder."""
        m = mask.float()
        high = m * 20.0 - 10.0
        low = F.interpolate(
            high,
            (high.shape[-2] // 4, high.shape[-1] // 4),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
        b = m.shape[0]
        _, ptr, _ = self._heads(
            feats.embed.expand(b, -1, -1, -1),
            feats,
            None,
            None,
            self.memory.mask_downsample(m),
            False,
        )
        present = (m.flatten(1) > 0).any(1, keepdim=True).float()
        obj = 20.0 * present - 10.0
        ptr = present * ptr + (1 - present) * self.memory.no_obj_ptr
        return low, ptr, obj

    def _conditioned(
        self, frame_idx, is_init, feats: FrameFeatures, b, outputs, num_frames, reverse
    ):
        """The frame's embedding conditioned on the memories (B, D, E, E)."""
        mem, cfg = self.memory, self.cfg
        d, e = feats.embed.shape[1], feats.embed.shape[-1]
        if is_init:
            return (feats.embed + self.image.no_mem_embed.view(1, -1, 1, 1)).expand(b, -1, -1, -1)
        cond = outputs["cond"]
        if not cond:
            raise RuntimeError(f"frame {frame_idx}: tracking needs a conditioning frame first")
        selected, unselected = select_cond_frames(frame_idx, cond, cfg.max_cond_frames_in_attn)
        memories: list[tuple[int, FrameOutput]] = [(0, o) for o in selected.values()]
        stride = cfg.memory_temporal_stride_for_eval
        n = cfg.num_maskmem
        for t_pos in range(1, n):
            t_rel = n - t_pos
            if t_rel == 1:
                prev = frame_idx + t_rel if reverse else frame_idx - t_rel
            elif not reverse:
                prev = ((frame_idx - 2) // stride) * stride - (t_rel - 2) * stride
            else:
                prev = -(-(frame_idx + 2) // stride) * stride + (t_rel - 2) * stride
            o = outputs["non_cond"].get(prev, unselected.get(prev))
            if o is not None and o.maskmem is not None:  # None: forgotten (window)
                memories.append((t_pos, o))
        tok, tok_pos = [], []
        dev = feats.embed.device
        for t_pos, o in memories:
            tok.append(o.maskmem.to(dev).float().flatten(2).transpose(1, 2))  # (B, E*E, m)
            pe = o.maskmem_pos.to(dev).flatten(2).transpose(1, 2)
            tok_pos.append(pe + mem.maskmem_tpos_enc[n - t_pos - 1].view(1, 1, -1))
        # object pointers
        n_ptr_tokens = 0
        max_ptrs = min(num_frames, cfg.max_obj_ptrs_in_encoder)
        if cfg.only_obj_ptrs_in_the_past_for_eval:
            ptr_cond = {
                t: o for t, o in selected.items() if (t >= frame_idx if reverse else t <= frame_idx)
            }
        else:
            ptr_cond = selected
        sign = -1 if reverse else 1
        ptrs = [
            ((frame_idx - t) * sign if cfg.tpos_enc_in_obj_ptrs else abs(frame_idx - t), o.obj_ptr)
            for t, o in ptr_cond.items()
        ]
        for t_diff in range(1, max_ptrs):
            t = frame_idx + t_diff if reverse else frame_idx - t_diff
            if t < 0 or t >= num_frames:
                break
            o = outputs["non_cond"].get(t, unselected.get(t))
            if o is not None:
                ptrs.append((t_diff, o.obj_ptr))
        if ptrs:
            pos_list = torch.tensor([p for p, _ in ptrs], device=dev)
            obj_ptrs = torch.stack([p.to(dev) for _, p in ptrs], dim=0)  # (P, B, D)
            if cfg.tpos_enc_in_obj_ptrs:
                pe = sine_pe_1d(pos_list / (max_ptrs - 1), d)
                pe = mem.obj_ptr_tpos_proj(pe)  # (P, m)
            else:
                pe = obj_ptrs.new_zeros(len(ptrs), mem.mem_dim)
            split = d // mem.mem_dim
            p_tok = obj_ptrs.reshape(len(ptrs), b, split, mem.mem_dim).permute(1, 0, 2, 3)
            p_tok = p_tok.reshape(b, len(ptrs) * split, mem.mem_dim)
            p_pos = pe.repeat_interleave(split, dim=0)[None].expand(b, -1, -1)
            tok.append(p_tok)
            tok_pos.append(p_pos)
            n_ptr_tokens = p_tok.shape[1]
        memory = torch.cat([t.expand(b, -1, -1) for t in tok], dim=1)
        memory_pos = torch.cat([t.expand(b, -1, -1) for t in tok_pos], dim=1)
        curr = feats.embed.flatten(2).transpose(1, 2).expand(b, -1, -1)
        curr_pos = feats.pos.flatten(2).transpose(1, 2).expand(b, -1, -1)
        out = mem.memory_attention(curr, curr_pos, memory, memory_pos, n_ptr_tokens)
        return out.transpose(1, 2).reshape(b, d, e, e)

    @torch.inference_mode()
    def encode_memory(
        self, feats: FrameFeatures, low_res: torch.Tensor, object_score, from_points: bool
    ):
        """Memory features (bf16) and PE of a frame from its low-res mask logits (B, 1, s, s)."""
        cfg, mem = self.cfg, self.memory
        b = low_res.shape[0]
        high = F.interpolate(
            low_res.float(), (self.size, self.size), mode="bilinear", align_corners=False
        )
        if cfg.binarize_mask_from_pts_for_mem_enc and from_points:
            m = (high > 0).float()
        else:
            m = torch.sigmoid(high)
        m = m * cfg.sigmoid_scale_for_mem_enc + cfg.sigmoid_bias_for_mem_enc
        x, pos = mem.memory_encoder(feats.embed.expand(b, -1, -1, -1), m)
        if cfg.version == "2.1":
            absent = (object_score <= 0).float()[:, :, None, None]
            x = x + absent * mem.no_obj_embed_spatial.view(1, -1, 1, 1)
        return x.to(torch.bfloat16), pos

    @torch.inference_mode()
    def track_step(
        self,
        frame_idx: int,
        is_init_cond_frame: bool,
        feats: FrameFeatures,
        outputs: dict,
        num_frames: int,
        points: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        mask_inputs: torch.Tensor | None = None,
        reverse: bool = False,
        run_mem_encoder: bool = True,
        prev_mask_logits: torch.Tensor | None = None,
    ) -> FrameOutput:
        """One frame for a batch of B objects (B = 1 per object in the predictor).

        Args:
            frame_idx: The frame.
            is_init_cond_frame: The object's first prompted frame (no memory to read).
            feats: The frame's features (:meth:`frame_features`).
            outputs: ``{"cond": {frame: FrameOutput}, "non_cond": {...}}`` of these objects.
            num_frames: Frames in the video (bounds the object-pointer window).
            points: (B, N, 2) clicks / box corners in model-input pixels, or None.
            labels: (B, N) their labels.
            mask_inputs: (B, 1, S, S) binary mask prompt (used as the output as it is).
            reverse: Tracking towards frame 0 (memories come from later frames).
            run_mem_encoder: Encode the result into memory features now.
            prev_mask_logits: (B, 1, s, s) the frame's earlier logits, for a correction.
        """
        b = 1 if points is None else points.shape[0]
        if mask_inputs is not None:
            b = mask_inputs.shape[0]
        if mask_inputs is not None and self.cfg.use_mask_input_as_output_without_sam:
            low, ptr, obj = self._mask_as_output(feats, mask_inputs)
        else:
            pix = self._conditioned(
                frame_idx, is_init_cond_frame, feats, b, outputs, num_frames, reverse
            )
            n_pts = 0 if labels is None else labels.shape[1]
            cfg = self.cfg
            multimask = (
                cfg.multimask_output_in_sam
                and (is_init_cond_frame or cfg.multimask_output_for_tracking)
                and cfg.multimask_min_pt_num <= n_pts <= cfg.multimask_max_pt_num
            )
            mask_in = mask_inputs if mask_inputs is not None else prev_mask_logits
            low, ptr, obj = self._heads(pix, feats, points, labels, mask_in, multimask)
        out = FrameOutput(low, ptr, obj)
        if run_mem_encoder and self.cfg.num_maskmem > 0:
            out.maskmem, out.maskmem_pos = self.encode_memory(feats, low, obj, points is not None)
        return out


def select_cond_frames(frame_idx: int, cond: dict, max_num: int) -> tuple[dict, dict]:
    """The conditioning frames attended to (all, or the closest ``max_num``) and the rest."""
    if max_num == -1 or len(cond) <= max_num:
        return cond, {}
    if max_num < 2:
        raise ValueError("max_cond_frames_in_attn must allow 2 or more frames")
    sel = {}
    before = max((t for t in cond if t < frame_idx), default=None)
    if before is not None:
        sel[before] = cond[before]
    after = min((t for t in cond if t >= frame_idx), default=None)
    if after is not None:
        sel[after] = cond[after]
    rest = sorted((t for t in cond if t not in sel), key=lambda t: abs(t - frame_idx))
    sel.update((t, cond[t]) for t in rest[: max_num - len(sel)])
    return sel, {t: o for t, o in cond.items() if t not in sel}
