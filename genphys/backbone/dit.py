"""Space–time diffusion transformer (DiT with adaLN-zero, Peebles & Xie 2023) over wavelet grids.

One model class serves 1D trajectories ``(B, C, T, X)`` (``patch_size`` of length 2) and 2D
trajectories ``(B, C, T, H, W)`` (length 3) through N-d patchify. Conditioning slots:

- ``sigma (B,)`` noise level → sinusoidal features → MLP (``noise_embedding`` option);
- ``params (B, P)`` and ``pooled (B, D_text)`` → MLPs, summed with the noise embedding into
  ``c`` that drives adaLN-zero in every block (learned null embeddings when dropped);
- ``tokens (B, L, D_tok)`` + ``token_mask (B, L)`` → cross-attention (PixArt-α style,
  Chen et al. 2023) in every ``cross_attn_every``-th block;
- ``cond (B, C_c, T, ...)`` + ``cond_mask`` → extra input channels ``[cond * mask, mask]``.
"""

from __future__ import annotations

import math

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from genphys.backbone.config import as_tuple, check_choice, check_heads, check_int
from genphys.backbone.inputs import Slots, prepare
from genphys.backbone.layers import (
    NOISE_EMBEDDINGS,
    Attention,
    FeedForward,
    GlobalConditioner,
    TokenEncoder,
    modulate,
    sincos_embedding,
)
from genphys.backbone.patchify import check_grid, grid_of, patchify, unpatchify
from genphys.errors import UserInputError

POS_EMBEDDINGS = ("sincos", "learned")


class DiTBlock(nn.Module):
    """adaLN-zero block: modulated self-attention, optional cross-attention, modulated MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, cross: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm_x = nn.LayerNorm(dim, eps=1e-6) if cross else None
        self.cross = Attention(dim, num_heads) if cross else None
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = FeedForward(dim, mlp_ratio)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.ada[1].weight)  # adaLN-zero: each block starts as the identity
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor, ctx: torch.Tensor | None,
                ctx_mask: torch.Tensor | None) -> torch.Tensor:
        """Update tokens ``x (B, N, D)`` given ``c (B, D)`` and context ``(B, L, D)``."""
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(c).chunk(6, dim=-1)  # each (B, D)
        x = x + g1[:, None] * self.attn(modulate(self.norm1(x), sh1, sc1))
        if self.cross is not None:
            x = x + self.cross(self.norm_x(x), ctx, ctx_mask)
        return x + g2[:, None] * self.mlp(modulate(self.norm2(x), sh2, sc2))


class FinalLayer(nn.Module):
    """adaLN-modulated LayerNorm and a zero-initialised linear map to patch pixels."""

    def __init__(self, dim: int, out_features: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        self.linear = nn.Linear(dim, out_features)
        for layer in (self.ada[1], self.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Map tokens ``(B, N, D)`` to patch values ``(B, N, C * prod(p))``."""
        shift, scale = self.ada(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))


class SpaceTimeDiT(ModelMixin, ConfigMixin):
    """Space–time DiT: ``forward(x, sigma, ...)`` returns a tensor shaped like ``x``."""

    @register_to_config
    def __init__(
        self,
        in_channels: int = 4,  # channels C of x (fields × wavelet subbands)
        patch_size: tuple[int, ...] = (2, 4),  # patch per (time, space...) axis; 2 = 1D, 3 = 2D
        hidden_dim: int = 128,  # token width D
        depth: int = 6,  # number of transformer blocks
        num_heads: int = 4,  # attention heads (hidden_dim must be divisible)
        mlp_ratio: float = 4.0,  # MLP hidden width / hidden_dim
        noise_embedding: str = "log_sigma",  # "log_sigma": c = ln(sigma)/4 (EDM); "t": sigma is t
        noise_scale: float = 1000.0,  # c is multiplied by this before the sinusoidal features
        freq_dim: int = 256,  # number of sinusoidal noise features
        param_dim: int = 0,  # PDE parameter vector size P (0 disables the slot)
        pooled_dim: int = 0,  # pooled text vector size D_text (0 disables the slot)
        token_dim: int = 0,  # conditioning token size D_tok (0 disables cross-attention)
        cross_attn_every: int = 1,  # cross-attention in blocks 0, k, 2k, ... (if token_dim > 0)
        cond_channels: int = 0,  # conditioning field channels C_c (0 disables the slot)
        pos_embedding: str = "sincos",  # "sincos" (any grid size) or "learned" (fixed grid)
        sample_size: tuple[int, ...] | None = None,  # grid (T, *space) for "learned" positions
    ):
        super().__init__()
        self.patch = as_tuple(patch_size, "patch_size")
        self.sample_grid = as_tuple(sample_size, "sample_size", len(self.patch))
        check_heads(check_int(hidden_dim, "hidden_dim", 1), num_heads)
        check_choice(noise_embedding, "noise_embedding", NOISE_EMBEDDINGS)
        check_choice(pos_embedding, "pos_embedding", POS_EMBEDDINGS)
        self.slots = Slots.checked(in_channels, len(self.patch), cond_channels, param_dim,
                                   pooled_dim, token_dim)
        every = check_int(cross_attn_every, "cross_attn_every", 1)
        patch_in = (in_channels + 2 * cond_channels) * math.prod(self.patch)
        self.embed = nn.Linear(patch_in, hidden_dim)
        self.cond = GlobalConditioner(hidden_dim, freq_dim=check_int(freq_dim, "freq_dim", 2),
                                      noise_embedding=noise_embedding, noise_scale=noise_scale,
                                      param_dim=param_dim, pooled_dim=pooled_dim)
        self.tokens = TokenEncoder(token_dim, hidden_dim) if token_dim > 0 else None
        self.blocks = nn.ModuleList(
            DiTBlock(hidden_dim, num_heads, mlp_ratio, cross=token_dim > 0 and i % every == 0)
            for i in range(check_int(depth, "depth", 1)))
        self.final = FinalLayer(hidden_dim, in_channels * math.prod(self.patch))
        self.pos = self._init_pos(pos_embedding, hidden_dim)
        self._pos_cache: dict = {}
        self._init_weights()

    def _init_pos(self, kind: str, dim: int) -> nn.Parameter | None:
        if kind == "sincos":
            return None
        if self.sample_grid is None:
            raise UserInputError('pos_embedding="learned" needs sample_size=(T, *space); '
                                 'give it or use pos_embedding="sincos".')
        check_grid(self.sample_grid, self.patch, "sample_size")
        emb = sincos_embedding(grid_of(self.sample_grid, self.patch), dim)  # (N, D)
        return nn.Parameter(emb.float()[None])  # (1, N, D), initialised at sin-cos

    def _init_weights(self) -> None:
        """Xavier-uniform linear layers, zero biases, then re-zero the adaLN-zero layers (DiT)."""
        zero = {id(m) for b in self.blocks for m in (b.ada[1],)}
        zero |= {id(self.final.ada[1]), id(self.final.linear)}
        for m in self.modules():
            if isinstance(m, nn.Linear) and id(m) not in zero:
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        for mlp_ in [self.cond.noise] + ([self.tokens.proj] if self.tokens else []):
            for lin in (mlp_[0], mlp_[2]):
                nn.init.normal_(lin.weight, std=0.02)

    def _positions(self, grid: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        if self.pos is not None:
            if self.sample_grid is not None and grid != grid_of(self.sample_grid, self.patch):
                raise UserInputError(
                    f"this model has learned positions for sample_size={self.sample_grid}; "
                    f"the input grid {tuple(g * p for g, p in zip(grid, self.patch))} differs.")
            return self.pos.to(like)
        key = (grid, like.dtype, like.device)
        if key not in self._pos_cache:
            dim = self.config.hidden_dim
            self._pos_cache[key] = sincos_embedding(grid, dim).to(like)[None]  # (1, N, D)
        return self._pos_cache[key]

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, *,
                params: torch.Tensor | None = None, pooled: torch.Tensor | None = None,
                tokens: torch.Tensor | None = None, token_mask: torch.Tensor | None = None,
                cond: torch.Tensor | None = None,
                cond_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Predict a tensor shaped like ``x (B, C, T, *space)`` at noise level ``sigma (B,)``.

        ``params (B, P)``, ``pooled (B, D_text)``: global conditions (None or NaN rows = dropped);
        ``tokens (B, L, D_tok)`` with ``token_mask (B, L)`` (True = real token);
        ``cond (B, C_c, T, *space)`` with ``cond_mask (B, 1 or C_c, T, *space)`` (1 = known).
        """
        like = self.embed.weight
        inp = prepare(self.slots, like, x, sigma, params, pooled, tokens, token_mask, cond,
                      cond_mask)
        check_grid(x.shape[2:], self.patch, "x")
        grid = grid_of(x.shape[2:], self.patch)
        h = self.embed(patchify(inp.x_in, self.patch)) + self._positions(grid, like)  # (B, N, D)
        c = self.cond(inp.sigma, inp.params, inp.pooled)  # (B, D)
        ctx, ctx_mask = (None, None)
        if self.tokens is not None:
            ctx, ctx_mask = self.tokens(inp.tokens, inp.token_mask, x.shape[0])
        for block in self.blocks:
            h = block(h, c, ctx, ctx_mask)
        out = unpatchify(self.final(h, c), self.patch, grid)  # (B, C, T, *space)
        return out.to(x.dtype)
