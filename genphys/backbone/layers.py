"""Building blocks shared by the backbones: noise/global embeddings, attention, positions.

- noise embedding: sinusoidal features (Vaswani et al. 2017; Ho et al. 2020) of
  ``c_noise = ln(sigma)/4`` (EDM, Karras et al. 2022, Table 1) or of the model's native
  time ``t``, followed by an MLP;
- global conditions (PDE parameters, pooled text) through MLPs with learned *null*
  embeddings so classifier-free guidance (Ho & Salimans 2022) can drop them;
- conditioning tokens projected to the model width, with a learned null token that is
  always attended to (so a sample with every token masked still has a valid softmax);
- multi-head self/cross attention on ``torch.nn.functional.scaled_dot_product_attention``;
- N-d sin-cos positional embeddings (Vaswani et al. 2017, split over axes as in MAE/DiT).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

NOISE_EMBEDDINGS = ("log_sigma", "t")


def sinusoidal_features(c: torch.Tensor, dim: int, scale: float = 1000.0,
                        max_period: float = 10000.0) -> torch.Tensor:
    """Features ``[cos(scale c w_k), sin(scale c w_k)]``, ``w_k = max_period^(-k/half)`` (DDPM)."""
    half = dim // 2
    k = torch.arange(half, device=c.device, dtype=torch.float64)
    w = torch.exp(-math.log(max_period) * k / half).to(c.dtype)  # (half,)
    arg = (scale * c)[:, None] * w[None]  # (B, half)
    out = torch.cat([torch.cos(arg), torch.sin(arg)], dim=-1)
    return F.pad(out, (0, dim - 2 * half))  # (B, dim)


def noise_input(sigma: torch.Tensor, kind: str) -> torch.Tensor:
    """The scalar fed to the noise embedding: ``ln(sigma)/4`` (EDM) or ``sigma`` used as ``t``."""
    if kind == "log_sigma":
        # sigma = 0 (the end of a sampling grid) is clamped so the embedding stays finite
        return torch.log(sigma.clamp_min(1e-20)) / 4
    return sigma


def mlp(d_in: int, d_hidden: int, d_out: int) -> nn.Sequential:
    """Two-layer SiLU MLP used by every embedder."""
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.SiLU(), nn.Linear(d_hidden, d_out))


class VectorEmbedder(nn.Module):
    """MLP embedding of a global vector ``(B, P)`` with a learned null embedding.

    ``v=None`` (absent) gives the null embedding for the whole batch; rows containing NaN
    are treated as dropped (classifier-free guidance dropout) and get the null embedding.
    """

    def __init__(self, dim_in: int, dim: int):
        super().__init__()
        self.net = mlp(dim_in, dim, dim)
        self.null = nn.Parameter(torch.randn(dim) * 0.02)

    def forward(self, v: torch.Tensor | None, batch: int) -> torch.Tensor:
        """Embed ``v (B, P)`` → ``(B, D)``; the null embedding where ``v`` is absent or NaN."""
        if v is None:
            return self.null.expand(batch, -1)
        drop = torch.isnan(v).any(dim=-1, keepdim=True)  # (B, 1)
        emb = self.net(torch.where(drop, torch.zeros_like(v), v))
        return torch.where(drop, self.null.to(emb.dtype).expand_as(emb), emb)


class GlobalConditioner(nn.Module):
    """Sum of the noise-level embedding and the optional PDE-parameter and pooled-text ones."""

    def __init__(self, dim: int, *, freq_dim: int, noise_embedding: str, noise_scale: float,
                 param_dim: int = 0, pooled_dim: int = 0):
        super().__init__()
        self.freq_dim, self.kind, self.scale = freq_dim, noise_embedding, noise_scale
        self.noise = mlp(freq_dim, dim, dim)
        self.params = VectorEmbedder(param_dim, dim) if param_dim > 0 else None
        self.pooled = VectorEmbedder(pooled_dim, dim) if pooled_dim > 0 else None

    def forward(self, sigma: torch.Tensor, params: torch.Tensor | None = None,
                pooled: torch.Tensor | None = None) -> torch.Tensor:
        """Global conditioning vector ``c (B, D)`` from ``sigma (B,)``, ``params``, ``pooled``."""
        feats = sinusoidal_features(noise_input(sigma, self.kind), self.freq_dim, self.scale)
        c = self.noise(feats)
        if self.params is not None:
            c = c + self.params(params, sigma.shape[0])
        if self.pooled is not None:
            c = c + self.pooled(pooled, sigma.shape[0])
        return c


class TokenEncoder(nn.Module):
    """Project tokens ``(B, L, D_tok)`` to ``(B, 1 + L, D)``, a learned null token first."""

    def __init__(self, token_dim: int, dim: int):
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(token_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.norm = nn.LayerNorm(dim)
        self.null = nn.Parameter(torch.randn(1, 1, dim) * 0.02)

    def forward(self, tokens: torch.Tensor | None, mask: torch.Tensor | None,
                batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return context ``(B, 1 + L, D)`` and key mask ``(B, 1 + L)`` (True = attend)."""
        null = self.null.expand(batch, -1, -1)  # (B, 1, D)
        ones = torch.ones(batch, 1, dtype=torch.bool, device=null.device)
        if tokens is None:
            return null, ones
        ctx = self.norm(self.proj(tokens))  # (B, L, D)
        if mask is None:
            mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return torch.cat([null.to(ctx.dtype), ctx], dim=1), torch.cat([ones, mask], dim=1)


class Attention(nn.Module):
    """Multi-head attention (self when ``context`` is None, else cross) on PyTorch SDPA."""

    def __init__(self, dim: int, num_heads: int, context_dim: int | None = None):
        super().__init__()
        self.h = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim or dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attend from ``x (B, N, D)`` to ``context (B, L, D)``; ``mask (B, L)`` True = keep."""
        b, n, d = x.shape
        ctx = x if context is None else context
        q = self.q(x).reshape(b, n, self.h, d // self.h).transpose(1, 2)  # (B, h, N, hd)
        kv = self.kv(ctx).reshape(b, ctx.shape[1], 2, self.h, d // self.h)  # (B, L, 2, h, hd)
        k, v = kv.permute(2, 0, 3, 1, 4)  # each (B, h, L, hd)
        attn_mask = None if mask is None else mask[:, None, None, :]  # (B, 1, 1, L)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, h, N, hd)
        return self.out(y.transpose(1, 2).reshape(b, n, d))  # (B, N, D)


class FeedForward(nn.Module):
    """Transformer MLP ``Linear → GELU(tanh) → Linear`` (as in DiT)."""

    def __init__(self, dim: int, ratio: float):
        super().__init__()
        hidden = int(dim * ratio)
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"),
                                 nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the MLP token-wise."""
        return self.net(x)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN modulation ``x * (1 + scale) + shift`` of tokens ``(B, N, D)`` by ``(B, D)``."""
    return x * (1 + scale[:, None]) + shift[:, None]


def sincos_embedding(grid: Sequence[int], dim: int) -> torch.Tensor:
    """N-d sin-cos positional embedding ``(prod(grid), dim)`` in float64, row-major over the grid.

    Each axis gets ``2 * (dim // (2 n))`` channels (1-d sin-cos of the integer index,
    Vaswani et al. 2017); leftover channels are zero.
    """
    n = len(grid)
    half = dim // (2 * n)
    w = 1.0 / 10000 ** (torch.arange(half, dtype=torch.float64) / max(half, 1))  # (half,)
    axes = torch.meshgrid(*[torch.arange(g, dtype=torch.float64) for g in grid], indexing="ij")
    parts = []
    for pos in axes:
        arg = pos.reshape(-1, 1) * w[None]  # (N, half)
        parts += [torch.sin(arg), torch.cos(arg)]
    emb = torch.cat(parts, dim=1)  # (N, 2 * half * n)
    return F.pad(emb, (0, dim - emb.shape[1]))  # (N, dim)
