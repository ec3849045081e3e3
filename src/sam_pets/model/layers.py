"""Small building blocks shared by the encoder and the decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` of (..., N, c) heads; in float32 when training on a CPU.

    Under CPU autocast the projections around it run in bfloat16, but the backward of torch's
    CPU attention kernel is several times slower in bfloat16 than in float32 (270 against
    47 ms a step of the built-in model's training); so when a gradient will flow, the inputs
    are cast up and the result back to their dtype. Inference and other devices get the plain
    call (the forward kernel is as fast in bfloat16).
    """
    if (
        q.device.type == "cpu"
        and q.dtype in (torch.bfloat16, torch.float16)
        and torch.is_grad_enabled()
        and (q.requires_grad or k.requires_grad or v.requires_grad)
    ):
        with torch.autocast("cpu", enabled=False):
            out = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
        return out.to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v)


class MLP(nn.Module):
    """Stack of ``num_layers`` Linear layers with an activation between them.

    Parameter names (``layers.0``, ``layers.1``, ...) match Meta's checkpoints.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        output_dim: int,
        num_layers: int,
        activation: type[nn.Module] = nn.ReLU,
        sigmoid_output: bool = False,
    ) -> None:
        super().__init__()
        dims_in = [input_dim] + [hidden_dim] * (num_layers - 1)
        dims_out = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(
            nn.Linear(i, o) for i, o in zip(dims_in, dims_out, strict=False)
        )
        self.act = activation()
        self.sigmoid_output = sigmoid_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the MLP over the last dimension."""
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = self.act(x)
        return torch.sigmoid(x) if self.sigmoid_output else x


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dimension of an NCHW tensor (eps 1e-6)."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` of shape (B, C, H, W) per pixel across C."""
        c = x.shape[1]
        if c > 8 or x.permute(0, 2, 3, 1).is_contiguous():
            # F.layer_norm on a channels-last view: one fused kernel instead of five passes
            y = F.layer_norm(x.permute(0, 2, 3, 1), (c,), self.weight, self.bias, self.eps)
            return y.permute(0, 3, 1, 2)  # (B, C, H, W), channels-last strides
        # Few channels stored planar (e.g. a conv's output): the fused kernel would normalise
        # many tiny strided rows; whole-plane passes are ~2x faster here.  The result is
        # channels-last like the fused path's, which the convs after it run much faster on.
        mean = x.mean(1, keepdim=True)
        d = x - mean
        d = d * torch.rsqrt((d * d).mean(1, keepdim=True) + self.eps)
        y = torch.addcmul(self.bias.view(1, -1, 1, 1), d, self.weight.view(1, -1, 1, 1))
        return y.contiguous(memory_format=torch.channels_last)


class Attention(nn.Module):
    """Multi-head attention with an optional down-projection of q/k/v (SAM's decoder attention).

    Args:
        embedding_dim: Width of the inputs and of the output.
        num_heads: Number of heads; must divide ``embedding_dim // downsample_rate``.
        downsample_rate: The q/k/v projections map to ``embedding_dim // downsample_rate``.
    """

    def __init__(self, embedding_dim: int, num_heads: int, downsample_rate: int = 1) -> None:
        super().__init__()
        self.num_heads = num_heads
        internal = embedding_dim // downsample_rate
        if internal % num_heads:
            raise ValueError(f"num_heads {num_heads} must divide internal dim {internal}")
        self.q_proj = nn.Linear(embedding_dim, internal)
        self.k_proj = nn.Linear(embedding_dim, internal)
        self.v_proj = nn.Linear(embedding_dim, internal)
        self.out_proj = nn.Linear(internal, embedding_dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)  # (B, h, N, c)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attend with already projected q (B, Nq, c), k and v (B, Nk, c); return (B, Nq, D)."""
        out = attention(self._heads(q), self._heads(k), self._heads(v))
        b, h, n, c = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h * c))  # (B, Nq, D)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Project and attend: q (B, Nq, D), k and v (B, Nk, D) -> (B, Nq, D)."""
        return self.attend(self.q_proj(q), self.k_proj(k), self.v_proj(v))


class DropPath(nn.Module):
    """Stochastic depth: drop the residual branch per sample with probability ``p``."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Identity in eval mode or when ``p == 0``."""
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep
