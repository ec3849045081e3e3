"""Inference-only fast path of the mask decoder (same maths, reordered for a CPU).

Per image, everything that does not depend on the prompt is computed once: the image tokens
with their positional encoding, the layer-0 projections of the image tokens, and the high-res
skips re-laid out to match the transposed convolutions.  Per click, attention with the few
prompt tokens is evaluated with the projection matrices folded onto the token side, e.g.
``softmax(q . (W_k x + b_k)) = softmax((W_k^T q) . x)``, which turns every (4096 x 256) @
(256 x 128) projection of the image tokens into a (4096 x 256) @ (256 x h*N) product with
N ~ 7 prompt tokens.  The two 2x2/stride-2 transposed convolutions become matrix products whose
outputs stay in "sub-pixel" order until the final (M, 4E, 4E) logits, so nothing large is ever
permuted.  A mask prompt (the previous click's logits) changes the layer-0 keys only by a
low-rank term, so it keeps all of that per-image work (see :func:`fast_decode`).  Results
equal :class:`~sam_pets.model.mask_decoder.MaskDecoder` up to float rounding (checked against
it and against Meta's code in the tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sam_pets.model.layers import Attention
from sam_pets.model.mask_decoder import MaskDecoder, MaskOutput


@dataclass
class PreparedImage:
    """Prompt-independent decoder inputs of one image (see module docstring).

    Attributes:
        embed: Image tokens incl. ``no_mem_embed``, (1, L, D) with L = E*E.
        pe: Positional encoding of the tokens, (1, L, D).
        keys0: ``embed + no_mask_embed`` (the layer-0 keys without a mask prompt), (1, L, D).
        k0, v0, q0: Layer-0 projections of ``keys0`` (+pe) for the two cross-attentions.
        s0: ``feat_s0`` + bias of the second transposed conv, sub-pixel order (4L, 4, D/8).
        size: E.
        up0: ``keys0 @ W`` with ``W`` the first transposed conv's matrix scaled by every
            ``norm4`` gain, (L, D): see :func:`_fold_through_norms`.
        s1c: ``feat_s1`` + the first transposed conv's bias, in its sub-pixel order (L, 4, D/4)
            viewed as (L, D), plus the constant part of that fold.
        chain: :func:`_norm_chain` of that conv matrix through every layer (weights only).
        hyper: Per layer of the hypernetwork MLPs, their weights stacked over the mask
            tokens for one batched product: ((T, D_in, D_out), (T, 1, D_out)).
        no_mask: The "no mask" embedding (D,) that ``keys0`` holds.
        layer1: For layer 1's projections of its image tokens (t2i ``k_proj``, ``v_proj``;
            i2t ``q_proj``; stacked: 3c outputs), the same fold through layer 0's ``norm4``:
            ``(chain, keys0 @ W_0 (1, L, 3c), rest (1, L, 3c))``, rest being what does not
            depend on the click (PE terms, biases); see :func:`_layer1_projections`.
            ``None`` for a one-layer decoder.
    """

    embed: torch.Tensor
    pe: torch.Tensor
    keys0: torch.Tensor
    k0: torch.Tensor
    v0: torch.Tensor
    q0: torch.Tensor
    s0: torch.Tensor
    size: int
    up0: torch.Tensor
    s1c: torch.Tensor
    chain: tuple
    hyper: tuple
    no_mask: torch.Tensor
    layer1: tuple | None


def _subpixel(feat: torch.Tensor, levels: int) -> torch.Tensor:
    """Re-lay (1, C, E*2^levels, E*2^levels) as (E*E*4^(levels-1), 4, C) in sub-pixel order.

    Row index = (i, j, a1, b1, ..., a_{l-1}, b_{l-1}), middle index = (a_l, b_l), where the
    pixel is (i*2^l + a1*2^(l-1) + ... + a_l, same for columns).
    """
    _, c, hh, ww = feat.shape
    e = hh >> levels
    x = feat[0].reshape(c, e, *([2] * levels), e, *([2] * levels))  # (C, i, a.., j, b..)
    # axes: 0=C, 1=i, 2..(1+levels)=a1..al, (2+levels)=j, (3+levels)..=b1..bl
    order = [1, 2 + levels]
    for t in range(levels):
        order += [2 + t, 3 + levels + t]
    order.append(0)
    x = x.permute(*order)  # (i, j, a1, b1, ..., al, bl, C)
    return x.reshape(-1, 4, c).contiguous()


def _convT_matrix(conv: torch.nn.ConvTranspose2d) -> torch.Tensor:
    """Weight of a 2x2/stride-2 ConvTranspose2d as (C_in, 4 * C_out) in (a, b, c) order."""
    w = conv.weight  # (C_in, C_out, 2, 2)
    return w.permute(0, 2, 3, 1).reshape(w.shape[0], -1)


def prepare_image(
    dec: MaskDecoder,
    image_pe: torch.Tensor,
    no_mask: torch.Tensor,
    embed: torch.Tensor,
    feat_s0: torch.Tensor,
    feat_s1: torch.Tensor,
) -> PreparedImage:
    """Precompute :class:`PreparedImage` for one image (features with batch 1)."""
    e = embed.shape[-1]
    tokens = embed.flatten(2).transpose(1, 2).contiguous()  # (1, L, D)
    pe = image_pe.flatten(2).transpose(1, 2).contiguous()  # (1, L, D)
    keys0 = tokens + no_mask.view(1, 1, -1)
    layers = dec.transformer.layers
    layer0 = layers[0]
    x = keys0 + pe
    t2i, i2t = layer0.cross_attn_token_to_image, layer0.cross_attn_image_to_token
    k0, v0, q0 = t2i.k_proj(x), t2i.v_proj(keys0), i2t.q_proj(x)
    dc1, dc2 = dec.output_upscaling[0], dec.output_upscaling[3]
    s1 = _subpixel(feat_s1, 1) + dc1.bias.view(1, 1, -1)  # (L, 4, D/4)
    s0 = _subpixel(feat_s0, 2) + dc2.bias.view(1, 1, -1)  # (4L, 4, D/8)
    chain = _norm_chain(layers, _convT_matrix(dc1))
    ws, _, consts = chain
    up0 = (keys0[0] @ ws[0].to(keys0.dtype)).to(s1.dtype)  # (L, D)
    s1c = s1.view(up0.shape) + consts[-1].to(s1.dtype)
    mlps = dec.output_hypernetworks_mlps
    hyper = tuple(
        (
            torch.stack([m.layers[i].weight.t() for m in mlps]).contiguous(),
            torch.stack([m.layers[i].bias for m in mlps]).unsqueeze(1),
        )
        for i in range(len(mlps[0].layers))
    )
    layer1 = None
    projs = ()
    if len(layers) > 1:
        t2i1, i2t1 = layers[1].cross_attn_token_to_image, layers[1].cross_attn_image_to_token
        projs = (t2i1.k_proj, t2i1.v_proj, i2t1.q_proj)
    if projs and len({lin.out_features for lin in projs}) == 1:
        w = torch.cat([lin.weight for lin in projs]).t()  # (D, 3c)
        chain1 = _norm_chain(layers[:1], w)
        with_pe = pe @ w  # (1, L, 3c); v_proj sees no PE
        c = projs[0].out_features
        with_pe[..., c : 2 * c] = 0
        rest = with_pe + torch.cat([lin.bias for lin in projs]) + chain1[2][-1]
        layer1 = (chain1, keys0 @ chain1[0][0], rest)
    return PreparedImage(
        tokens, pe, keys0, k0, v0, q0, s0, e, up0, s1c, chain, hyper, no_mask, layer1
    )


def _layer1_projections(
    prep: PreparedImage, stats: tuple, lowrank: tuple | None, b: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Layer 1's projections of its image tokens without building them (or them + PE).

    Layer 1's image tokens are layer 0's keys after its attention update and ``norm4``, so
    their projections fold through that norm like the upscaling's first product (see
    :func:`_fold_through_norms`): a cached per-image product plus a per-click
    (L x ~hN) @ (~hN x 3c) one.  Returns t2i's keys and values and i2t's queries, each
    (B, L, c).
    """
    chain, base, rest = prep.layer1
    y, a, u = _fold_through_norms(chain, base, rest, [stats], lowrank)
    return y.baddbmm_(a.expand(b, -1, -1), u.expand(b, -1, -1)).chunk(3, dim=-1)


def _norm_chain(layers, w: torch.Tensor) -> tuple[list, list, list]:
    """A matrix ``w`` (D, K) applied after ``layers``, carried back through their ``norm4``.

    With ``W_n = w`` and ``W_l = diag(g_l) W_{l+1}`` (g_l: layer l's ``norm4`` gain), returns
    ``[W_0..W_{n-1}]``, the column sums ``1^T W_l`` and the bias terms ``b_l^T W_{l+1}``.
    """
    ws, sums, consts = [], [], []
    for layer in reversed(layers):
        consts.append(layer.norm4.bias @ w)
        w = layer.norm4.weight.view(-1, 1) * w
        ws.append(w)
        sums.append(w.sum(0))
    return ws[::-1], sums[::-1], consts[::-1]


def _heads(x: torch.Tensor, h: int) -> torch.Tensor:
    b, n, c = x.shape
    return x.view(b, n, h, c // h).transpose(1, 2)  # (B, h, N, c)


def _token_to_image(
    att: Attention, q_tok: torch.Tensor, x_img: torch.Tensor, v_img: torch.Tensor
) -> torch.Tensor:
    """Token queries (B, N, D) attend to image tokens; projections folded onto the tokens.

    ``x_img`` (1|B, L, D) are the keys before ``k_proj`` (image tokens + PE), ``v_img`` the
    values before ``v_proj``.  Returns (B, N, D) after ``out_proj``.
    """
    h = att.num_heads
    q = _heads(att.q_proj(q_tok), h)  # (B, h, N, c)
    b, _, n, c = q.shape
    wk = att.k_proj.weight.view(h, c, -1)  # (h, c, D)
    qk = torch.matmul(q, wk).reshape(b, h * n, -1)  # (B, hN, D); the k bias cancels
    qk = qk * (1.0 / math.sqrt(c))
    # One fused kernel: softmax over the L image tokens, weighted sum of the raw keys.  The
    # kernel shares work among threads by (batch, head, block of 32 query rows): the hN rows
    # as two "heads" of the same keys split them evenly (e.g. 40 rows: 20 + 20, not 32 + 8).
    g = 2 if (h * n) % 2 == 0 else 1
    z = F.scaled_dot_product_attention(
        qk.view(b, g, h * n // g, -1),
        x_img.expand(b, -1, -1).unsqueeze(1).expand(-1, g, -1, -1),
        v_img.expand(b, -1, -1).unsqueeze(1).expand(-1, g, -1, -1),
        scale=1.0,
    ).view(b, h, n, -1)  # (B, h, N, D)
    wv = att.v_proj.weight.view(h, c, -1)  # (h, c, D)
    out = torch.matmul(z, wv.transpose(-1, -2)) + att.v_proj.bias.view(1, h, 1, c)  # (B,h,N,c)
    return att.out_proj(out.transpose(1, 2).reshape(b, n, h * c))


def _image_to_token(
    att: Attention,
    q_img: torch.Tensor | None,
    x_img: torch.Tensor,
    k_tok: torch.Tensor,
    v_tok: torch.Tensor,
    keys: torch.Tensor,
    inplace: bool,
    extra: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Image queries attend to the tokens: ``keys + out_proj(attention) = keys + A @ U``.

    Returns that sum (B, L, D) with the attention weights, transposed: A^T (B, Nh, L), and
    the projected values U (B, Nh, D); their Nh rows run over (token, head).  With ``inplace``
    the sum is written into ``keys`` (which the caller no longer needs).  ``extra`` =
    (P (B, L, r), R (B, r, D)) adds ``P @ R`` to the sum in the same product (the mask
    prompt's low-rank part of the keys, see :func:`fast_decode`).

    ``q_img`` may be precomputed ``q_proj(x_img)`` (layer 0); otherwise ``q_proj`` is folded
    onto the keys: ``(W_q x + b_q) . k = x . (W_q^T k) + b_q . k``.

    The scores are built as (token, head, image token): the softmax then runs over the few
    tokens as its outer dimension, vectorised over the h*L others (softmax over a last
    dimension of ~7 is some 20x slower on a CPU).
    """
    h = att.num_heads
    k = _heads(att.k_proj(k_tok), h)  # (B, h, N, c)
    v = _heads(att.v_proj(v_tok), h)  # (B, h, N, c)
    b, _, n, c = k.shape
    scale = 1.0 / math.sqrt(c)
    if q_img is not None:
        # block-diagonal (N*h, h*c) matrix: head h's keys only see head h's query channels
        kbd = k.new_zeros(b, n, h, h, c)
        idx = torch.arange(h, device=k.device)
        kbd[:, :, idx, idx, :] = k.transpose(1, 2) * scale  # (B, N, h, c)
        scores = torch.matmul(kbd.view(b, n * h, h * c), q_img.transpose(1, 2))  # (B, Nh, L)
    else:
        wq = att.q_proj.weight.view(h, c, -1)  # (h, c, D)
        kq = (torch.matmul(k, wq) * scale).transpose(1, 2).reshape(b, n * h, -1)  # (B, Nh, D)
        bias = (k * att.q_proj.bias.view(1, h, 1, c)).sum(-1).transpose(1, 2) * scale
        scores = torch.baddbmm(
            bias.reshape(b, n * h, 1), kq, x_img.expand(b, -1, -1).transpose(1, 2)
        )  # (B, Nh, L)
    l_ = scores.shape[-1]
    attn = torch.softmax(scores.view(b, n, h * l_), dim=1).view(b, n * h, l_)  # A^T
    wo = att.out_proj.weight.view(-1, h, c).permute(1, 2, 0)  # (h, c, D)
    # out_proj folded onto the values; its bias too: each head's weights sum to 1 over the
    # N tokens, so adding bias/h to every value adds the bias once to every image token
    u = (torch.matmul(v, wo) + att.out_proj.bias / h).transpose(1, 2)  # (B, N, h, D)
    attn, u = attn.to(keys.dtype), u.reshape(b, n * h, -1).to(keys.dtype)
    lhs, rhs = attn.transpose(1, 2), u
    if extra is not None:
        lhs = torch.cat([extra[0].to(keys.dtype).expand(b, -1, -1), lhs], dim=-1)
        rhs = torch.cat([extra[1].to(keys.dtype).expand(b, -1, -1), u], dim=1)
    if inplace:
        return keys.baddbmm_(lhs, rhs), attn, u  # (B, L, D)
    # out of place, the GEMM reads the (shared) keys directly: no copy to accumulate into
    # (``out=`` keeps it out of autocast: keys dtype, fp32 sums, as in place)
    out = keys.new_empty((b, keys.shape[1], keys.shape[2]))
    return torch.baddbmm(keys, lhs, rhs, out=out), attn, u


def fast_decode(
    dec: MaskDecoder,
    prep: PreparedImage,
    sparse: torch.Tensor,
    mask: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None,
    multimask_output: bool,
) -> MaskOutput:
    """Inference-only equivalent of ``MaskDecoder.forward`` (dynamic multimask included).

    Args:
        dec: The decoder whose weights to use (eval mode).
        prep: Output of :func:`prepare_image`.
        sparse: Prompt tokens (B, N, D).
        mask: The mask prompt's embedding as factors ``(H, W, c)``: its image tokens are
            ``H @ W + c`` with H (B, L, r), W (r, D), c (D,) (r = 16 for SAM 2: the embedding
            ends in a 1x1 conv from r channels); ``None`` for "no mask".
        multimask_output: As in ``MaskDecoder.forward``.

    A mask prompt replaces the "no mask" embedding in the layer-0 keys, so they become
    ``keys0 + P @ R`` with ``P = [H, 1]`` (B, L, r+1) and ``R = [W; c - no_mask]``: every
    layer-0 projection is the cached one plus a rank-(r+1) product, and the upscaling fold
    takes the extra term like the attention updates.
    """
    b = sparse.shape[0]
    out_tokens = torch.cat(
        [dec.obj_score_token.weight, dec.iou_token.weight, dec.mask_tokens.weight], dim=0
    )
    tokens = torch.cat([out_tokens.unsqueeze(0).expand(b, -1, -1), sparse], dim=1)  # (B,Nq,D)
    layers = dec.transformer.layers
    keys, pe = prep.keys0, prep.pe
    lowrank = None
    if mask is not None:
        h_m, w_m, c_m = mask
        p_m = torch.cat([h_m, h_m.new_ones(h_m.shape[:-1] + (1,))], dim=-1).expand(b, -1, -1)
        r_m = torch.cat([w_m, (c_m - prep.no_mask).view(1, -1)], dim=0).to(p_m.dtype)
        lowrank = (p_m, r_m.unsqueeze(0))  # keys0 + P @ R: the layer-0 keys

    def layer0(cached: torch.Tensor, proj: torch.nn.Linear) -> torch.Tensor:
        """A cached layer-0 projection (1, L, c) with the mask prompt's term added."""
        if lowrank is None:
            return cached.expand(b, -1, -1)
        p, r = lowrank
        out = cached.new_empty((b, cached.shape[1], cached.shape[2]))  # (out=: no autocast)
        rw = (r @ proj.weight.t().to(r.dtype)).to(p.dtype).expand(b, -1, -1)
        return torch.baddbmm(cached, p, rw, out=out)

    queries = tokens
    fold = []  # per layer (A^T, U, mean, rstd) of the image-token update and its norm4
    for i, layer in enumerate(layers):
        queries = layer.token_self_attention(queries, tokens)
        q = queries + tokens
        t2i = layer.cross_attn_token_to_image
        # layers 0 and 1: the image tokens' projections from cached products
        q_img = x_img = None
        if i == 0:
            k_img, v_img = layer0(prep.k0, t2i.k_proj), layer0(prep.v0, t2i.v_proj)
            q_img = layer0(prep.q0, layer.cross_attn_image_to_token.q_proj)
        elif i == 1 and prep.layer1 is not None:
            k_img, v_img, q_img = _layer1_projections(prep, fold[0], lowrank, b)
        else:
            x_img = keys + pe
        if x_img is None:
            att = t2i.attend(t2i.q_proj(q), k_img, v_img)
        else:
            att = _token_to_image(t2i, q, x_img, keys)
        queries = layer.norm2(queries + att)
        queries = layer.norm3(queries + layer.mlp(queries))
        q = queries + tokens
        i2t = layer.cross_attn_image_to_token
        owned = keys is not prep.keys0 and keys.shape[0] == b
        extra = lowrank if i == 0 else None
        upd, a, u = _image_to_token(i2t, q_img, x_img, q, queries, keys, owned, extra)
        n4 = layer.norm4  # as n4(upd), keeping the row statistics for _fold_through_norms
        keys, mean, rstd = torch.native_layer_norm(
            upd, n4.normalized_shape, n4.weight, n4.bias, n4.eps
        )
        fold.append((a, u, mean, rstd))
    # The final attention runs only for the output tokens that are read afterwards (each
    # query row attends on its own): object score, IoU and the wanted mask tokens, not the
    # prompt tokens nor, with multimask, mask token 0.
    idx = [1, 2, 3] if multimask_output else [0, 1, 2, 3]
    rows = [0, 1] + [2 + i for i in idx]
    queries, tokens = queries[:, rows], tokens[:, rows]
    final = dec.transformer.final_attn_token_to_image
    queries = dec.transformer.norm_final_attn(
        queries + _token_to_image(final, queries + tokens, keys + pe, keys)
    )
    object_score = dec.pred_obj_score_head(queries[:, 0])  # (B, 1)
    iou = dec.iou_prediction_head(queries[:, 1])[:, idx]  # (B, M)
    toks = queries[:, 2:]  # (B, M, D): the mask tokens of idx
    # the M hypernetwork MLPs as one batched product per layer (idx is a run: a slice)
    sel, act = slice(idx[0], idx[-1] + 1), dec.output_hypernetworks_mlps[0].act
    hyper = toks.transpose(0, 1)  # (M, B, D)
    for j, (w, bias) in enumerate(prep.hyper):
        hyper = torch.baddbmm(bias[sel], hyper, w[sel])
        if j < len(prep.hyper) - 1:
            hyper = act(hyper)
    hyper = hyper.transpose(0, 1)  # (B, M, D/8)
    y1, a_up, u_up = _fold_through_norms(prep.chain, prep.up0, prep.s1c, fold, lowrank)
    logits = _upscale_and_project(dec, prep, y1, a_up, u_up, hyper)
    if not multimask_output:
        logits, iou = dec.select_stable(logits, iou)
        toks = toks[:, :1]
    return MaskOutput(logits, iou, object_score, toks)


def _fold_through_norms(
    chain: tuple, base: torch.Tensor, const: torch.Tensor, fold: list, lowrank: tuple | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``keys_n @ W + const`` for the keys after the layers of ``fold``, without the keys.

    The layer-0 keys are the same for every click (up to a mask prompt's low-rank term
    ``P @ R``, ``lowrank``), and each layer only adds a low-rank update ``A_l @ U_l``
    (A: L x hN, hN ~ 64) before a row-wise LayerNorm ``r_l * (x - m_l) * g_l + b_l``.
    Unrolled through the layers (``chain``: :func:`_norm_chain` of W), the product becomes
    the cached ``base = keys0 @ W_0`` scaled per row, plus an (L x ~2hN) @ (~2hN x K)
    product: e.g. half the FLOPs of the upscaling's (L x D) @ (D x D).  ``const`` (1, L, K)
    holds what does not depend on the click, including the last bias term.

    Returns ``(c * base + const, A_aug, U_aug)``: the result is the first plus
    ``A_aug @ U_aug`` (the caller accumulates it, e.g. band by band).
    """
    ws, sums, consts = chain
    dtype = const.dtype
    scale = None  # product of the rstds of layer l and the layers after it, (B, 1, L)
    cols, rows = [], []  # cols: the factors' columns as rows, (B, k, L) each
    for w, colsum, bias_w, (a, u, mean, rstd) in reversed(
        list(zip(ws, sums, [*consts[:-1], None], fold, strict=True))
    ):
        if bias_w is not None:  # b_l^T W_{l+1} (norm4 bias), weighted by the rstds after l
            cols.append(scale)
            rows.append(bias_w.view(1, 1, -1).expand(u.shape[0], -1, -1))
        rstd = rstd.transpose(1, 2)
        scale = rstd if scale is None else rstd * scale
        cols += [a * scale, -mean.transpose(1, 2) * scale]
        rows += [u @ w, colsum.view(1, 1, -1).expand(u.shape[0], -1, -1)]
    if lowrank is not None:
        p, r = lowrank
        cols.append(p.transpose(1, 2) * scale)
        rows.append((r @ ws[0].to(r.dtype)).expand(p.shape[0], -1, -1))
    a_aug = torch.cat([c.to(dtype) for c in cols], dim=1).transpose(1, 2)  # (B, L, K)
    u_aug = torch.cat([r.to(dtype) for r in rows], dim=1)  # (B, K, D)
    y = torch.addcmul(const, base, scale.transpose(1, 2).to(dtype))  # (B, L, K)
    return y, a_aug, u_aug


_UPSCALE_BAND = 1024  # image tokens per band in the upscaling pipeline


def _upscale_and_project(
    dec: MaskDecoder,
    prep: PreparedImage,
    y1: torch.Tensor,
    a: torch.Tensor,
    u: torch.Tensor,
    hyper: torch.Tensor,
) -> torch.Tensor:
    """Transposed convs + skips + GELU in sub-pixel order, then the hypernetwork product.

    The first conv's output is ``y1 + a @ u``, accumulated in y1 (B, L, D), which the caller
    no longer needs; a (1|B, L, K) and u (1|B, K, D) broadcast over the B prompt sets;
    hyper (B, M, D/8) -> logits (B, M, 4E, 4E).
    """
    _, ln1, _, dc2, _ = dec.output_upscaling
    b, m = hyper.shape[:2]
    l_, d = y1.shape[-2:]
    c1, c2 = d // 4, d // 8
    dtype = prep.s1c.dtype
    w2 = _convT_matrix(dc2).to(dtype)
    hyper = hyper.to(dtype)  # (B, M, C2)
    a, u = a.to(dtype).expand(b, -1, -1), u.to(dtype).expand(b, -1, -1)
    if y1.shape[0] != b or y1.dtype != dtype:
        raise ValueError(f"y1 must be a ({b}, L, D) {dtype} tensor, got {tuple(y1.shape)}")
    s0 = prep.s0.view(l_, 16 * c2)  # rows (i, j), then (a1, b1, a2, b2, c)
    logits = u.new_empty((b, m, l_, 16))
    # Bands of image tokens keep every intermediate in cache: the maths is per token.
    for lo in range(0, l_, _UPSCALE_BAND):
        hi = min(lo + _UPSCALE_BAND, l_)
        n = hi - lo
        # in place: no autocast, fp32 sums as in the conv
        y = y1[:, lo:hi].baddbmm_(a[:, lo:hi], u)  # (B, n, 4*C1)
        y = F.gelu(F.layer_norm(y.view(b, n, 4, c1), (c1,), ln1.weight, ln1.bias, ln1.eps))
        # out of place: the GEMM reads the skips where they are, no copy to accumulate into
        # (``out=`` keeps it out of autocast, like the in-place products)
        z = u.new_empty((b, 4 * n, 4 * c2))
        torch.baddbmm(
            s0[lo:hi].view(1, 4 * n, 4 * c2), y.view(b, 4 * n, c1), w2.expand(b, -1, -1), out=z
        )
        z = torch.ops.aten.gelu_(z)
        # (M x C2) @ (C2 x 16n): the few masks as rows is the shape a GEMM runs fast
        out = logits[:, :, lo:hi].view(b, m, 16 * n)
        torch.matmul(hyper, z.view(b, 16 * n, c2).transpose(1, 2), out=out)
    e = prep.size
    # (i, j, a1, b1, a2, b2) -> pixel (4i + 2a1 + a2, 4j + 2b1 + b2), in two moves of whole
    # runs (4 values, then 2): much faster than one 8-d permute of single values
    x = logits.view(b * m, e, e, 2, 2, 4).permute(0, 1, 3, 2, 4, 5).contiguous()
    x = x.view(b * m, e, 2, e, 2, 2, 2).permute(0, 1, 2, 5, 3, 4, 6)
    return x.reshape(b, m, 4 * e, 4 * e)
