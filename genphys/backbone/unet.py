"""Compact space–time UNet for small grids (ADM-style, Dhariwal & Nichol 2021), N-d convolutions.

Convolutions are 2-d for 1D trajectories ``(B, C, T, X)`` and 3-d for 2D trajectories
``(B, C, T, H, W)`` (``spatial_dims``). Residual blocks are modulated by adaptive group
norm (FiLM, Perez et al. 2018) from the same global vector ``c`` as the DiT (noise level +
PDE parameters + pooled text); self- and cross-attention to conditioning tokens act at the
lowest resolution. Residual branches and the output convolution start at zero, so the
untrained network outputs zeros (as the DiT's adaLN-zero does).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from genphys.backbone.config import as_tuple, check_choice, check_heads, check_int
from genphys.backbone.inputs import Slots, prepare
from genphys.backbone.layers import NOISE_EMBEDDINGS, Attention, GlobalConditioner, TokenEncoder
from genphys.errors import UserInputError

CONVS = {2: nn.Conv2d, 3: nn.Conv3d}


def _zero(m: nn.Module) -> nn.Module:
    for p in m.parameters():
        nn.init.zeros_(p)
    return m


def _bcast(v: torch.Tensor, n_axes: int) -> torch.Tensor:
    return v.reshape(*v.shape, *([1] * n_axes))  # (B, C, 1, ..., 1)


class ResBlock(nn.Module):
    """GroupNorm–SiLU–conv twice, the second norm modulated by ``c`` (adaGN), residual skip."""

    def __init__(self, cin: int, cout: int, emb: int, n_axes: int, groups: int):
        super().__init__()
        conv = CONVS[n_axes]
        self.n = n_axes
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = conv(cin, cout, 3, padding=1)
        self.film = nn.Sequential(nn.SiLU(), nn.Linear(emb, 2 * cout))
        self.norm2 = nn.GroupNorm(groups, cout, affine=False)
        self.conv2 = _zero(conv(cout, cout, 3, padding=1))
        self.skip = conv(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Apply to ``x (B, C_in, *S)`` with global vector ``c (B, E)``."""
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(c).chunk(2, dim=-1)  # each (B, C_out)
        h = self.norm2(h) * (1 + _bcast(scale, self.n)) + _bcast(shift, self.n)
        return self.skip(x) + self.conv2(F.silu(h))


class MidAttention(nn.Module):
    """Self-attention over all grid points, then cross-attention to the conditioning tokens."""

    def __init__(self, ch: int, num_heads: int, groups: int, cross: bool):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch)
        self.attn = Attention(ch, num_heads)
        self.norm_x = nn.LayerNorm(ch) if cross else None
        self.cross = Attention(ch, num_heads) if cross else None

    def forward(self, x: torch.Tensor, ctx: torch.Tensor | None,
                ctx_mask: torch.Tensor | None) -> torch.Tensor:
        """Attend on ``x (B, C, *S)``; context ``(B, L, C)`` with mask ``(B, L)``."""
        b, ch, *s = x.shape
        h = self.norm(x).flatten(2).transpose(1, 2)  # (B, N, C)
        t = x.flatten(2).transpose(1, 2) + self.attn(h)  # (B, N, C)
        if self.cross is not None:
            t = t + self.cross(self.norm_x(t), ctx, ctx_mask)
        return t.transpose(1, 2).reshape(b, ch, *s)  # (B, C, *S)


class SpaceTimeUNet(ModelMixin, ConfigMixin):
    """Compact space–time UNet with the same forward signature and slots as the DiT."""

    @register_to_config
    def __init__(
        self,
        in_channels: int = 4,  # channels C of x (fields × wavelet subbands)
        spatial_dims: int = 1,  # 1: x is (B, C, T, X), conv2d; 2: (B, C, T, H, W), conv3d
        base_channels: int = 32,  # width of the first level
        channel_mult: tuple[int, ...] = (1, 2, 2),  # widths per level; later levels halve sizes
        num_res_blocks: int = 1,  # residual blocks per level (the up path has one more)
        num_heads: int = 4,  # attention heads at the lowest resolution
        groups: int = 8,  # GroupNorm groups (must divide every level's width)
        noise_embedding: str = "log_sigma",  # "log_sigma": c = ln(sigma)/4 (EDM); "t": sigma is t
        noise_scale: float = 1000.0,  # c is multiplied by this before the sinusoidal features
        freq_dim: int = 128,  # number of sinusoidal noise features
        param_dim: int = 0,  # PDE parameter vector size P (0 disables the slot)
        pooled_dim: int = 0,  # pooled text vector size D_text (0 disables the slot)
        token_dim: int = 0,  # conditioning token size D_tok (0 disables cross-attention)
        cond_channels: int = 0,  # conditioning field channels C_c (0 disables the slot)
    ):
        super().__init__()
        self.mult = as_tuple(channel_mult, "channel_mult")
        check_choice(spatial_dims, "spatial_dims", (1, 2))
        check_choice(noise_embedding, "noise_embedding", NOISE_EMBEDDINGS)
        widths = [check_int(base_channels, "base_channels", 1) * m for m in self.mult]
        if any(w % check_int(groups, "groups", 1) for w in widths):
            raise UserInputError(f"groups={groups} does not divide the level widths {widths}; "
                                 f"choose base_channels divisible by groups.")
        check_heads(widths[-1], num_heads, "base_channels * channel_mult[-1]")
        n = spatial_dims + 1
        self.slots = Slots.checked(in_channels, n, cond_channels, param_dim,
                                   pooled_dim, token_dim)
        emb = 4 * base_channels
        self.cond = GlobalConditioner(emb, freq_dim=check_int(freq_dim, "freq_dim", 2),
                                      noise_embedding=noise_embedding, noise_scale=noise_scale,
                                      param_dim=param_dim, pooled_dim=pooled_dim)
        self.tokens = TokenEncoder(token_dim, widths[-1]) if token_dim > 0 else None
        self.conv_in = CONVS[n](in_channels + 2 * cond_channels, widths[0], 3, padding=1)
        self._build_levels(widths, emb, n, check_int(num_res_blocks, "num_res_blocks", 1), groups)
        self.mid = nn.ModuleList([ResBlock(widths[-1], widths[-1], emb, n, groups),
                                  MidAttention(widths[-1], num_heads, groups, token_dim > 0),
                                  ResBlock(widths[-1], widths[-1], emb, n, groups)])
        self.norm_out = nn.GroupNorm(groups, widths[0])
        self.conv_out = _zero(CONVS[n](widths[0], in_channels, 3, padding=1))

    def _build_levels(self, widths: list[int], emb: int, n: int, nres: int, groups: int) -> None:
        conv = CONVS[n]
        self.down, self.up = nn.ModuleList(), nn.ModuleList()
        skips, ch = [widths[0]], widths[0]
        for i, w in enumerate(widths):
            blocks = nn.ModuleList()
            for _ in range(nres):
                blocks.append(ResBlock(ch, w, emb, n, groups))
                ch = w
                skips.append(ch)
            last = i == len(widths) - 1
            self.down.append(nn.ModuleList([blocks, nn.Identity() if last else
                                            conv(ch, ch, 3, stride=2, padding=1)]))
            if not last:
                skips.append(ch)
        for i, w in reversed(list(enumerate(widths))):
            blocks = nn.ModuleList()
            for _ in range(nres + 1):
                blocks.append(ResBlock(ch + skips.pop(), w, emb, n, groups))
                ch = w
            self.up.append(nn.ModuleList([blocks, nn.Identity() if i == 0 else
                                          conv(ch, ch, 3, padding=1)]))

    def _check_size(self, x: torch.Tensor) -> None:
        f = 2 ** (len(self.mult) - 1)
        if any(s % f for s in x.shape[2:]):
            raise UserInputError(
                f"x grid size {tuple(x.shape[2:])} is not divisible by {f}; with "
                f"channel_mult={self.mult} every (time, space...) size must be a multiple of {f}.")

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, *,
                params: torch.Tensor | None = None, pooled: torch.Tensor | None = None,
                tokens: torch.Tensor | None = None, token_mask: torch.Tensor | None = None,
                cond: torch.Tensor | None = None,
                cond_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Predict a tensor shaped like ``x (B, C, T, *space)``; slots as in ``SpaceTimeDiT``."""
        like = self.conv_in.weight
        inp = prepare(self.slots, like, x, sigma, params, pooled, tokens, token_mask, cond,
                      cond_mask)
        self._check_size(x)
        c = self.cond(inp.sigma, inp.params, inp.pooled)  # (B, E)
        ctx, ctx_mask = (None, None)
        if self.tokens is not None:
            ctx, ctx_mask = self.tokens(inp.tokens, inp.token_mask, x.shape[0])
        h = self.conv_in(inp.x_in)
        skips = [h]
        for blocks, down in self.down:
            for block in blocks:
                h = block(h, c)
                skips.append(h)
            if not isinstance(down, nn.Identity):
                h = down(h)
                skips.append(h)
        h = self.mid[2](self.mid[1](self.mid[0](h, c), ctx, ctx_mask), c)
        for blocks, up in self.up:
            for block in blocks:
                h = block(torch.cat([h, skips.pop()], dim=1), c)
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h))).to(x.dtype)
