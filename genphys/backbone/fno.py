"""Space–time Fourier neural operator denoiser (FNO, Li et al. 2021) with the backbones' slots.

The time axis of the (wavelet-channel) trajectory is folded into channels, so the
network is a stack of Fourier layers over *space* only, as in the FNO paper's
"time as channels" setting (their Section 5.3): ``x (B, C, T, *space)`` →
``(B, C·T, *space)``. Each block is pre-norm and residual:

    h = adaGN(v; c),   v ← v + W_out · GELU(K h + W h)

where ``K`` is the spectral convolution ``IFFT(R · FFT(h))`` on the lowest ``modes``
Fourier modes (Li et al. 2021, eq. 5), ``W`` a pointwise linear map, adaGN a GroupNorm
modulated by the global vector ``c`` (noise level + PDE parameters + pooled text, as in the
UNet) and ``W_out`` starts at zero so the untrained network is the identity on the lifted
state and outputs zeros. Conditioning tokens are read by cross-attention from every spatial
position after the middle block. Spectral layers assume a periodic domain along the space
axes; translation equivariance in space is exact (no coordinate channels are added).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from genphys.backbone.config import check_choice, check_heads, check_int
from genphys.backbone.inputs import Slots, prepare
from genphys.backbone.layers import NOISE_EMBEDDINGS, Attention, GlobalConditioner, TokenEncoder
from genphys.errors import UserInputError


class SpectralConv(nn.Module):
    """``K v = IFFT(R · FFT(v))`` over the last ``dims`` axes, lowest ``modes`` per axis kept.

    Weights are complex ``R (in, out, *block)`` stored as two real tensors (safetensors
    cannot hold complex). For ``dims = 1`` the block is the ``modes`` lowest rFFT modes; for
    ``dims = 2`` it is ``(2 modes, modes)``: the lowest positive *and* negative frequencies
    along the first axis and the rFFT half along the last.
    """

    def __init__(self, in_channels: int, out_channels: int, modes: int, dims: int = 1):
        super().__init__()
        check_choice(dims, "dims", (1, 2))
        self.modes, self.dims = check_int(modes, "modes", 1), dims
        block = (modes,) if dims == 1 else (2 * modes, modes)
        scale = 1.0 / (in_channels * out_channels)
        self.weight_re = nn.Parameter(scale * torch.rand(in_channels, out_channels, *block))
        self.weight_im = nn.Parameter(scale * torch.rand(in_channels, out_channels, *block))

    def _check(self, shape: tuple[int, ...]) -> None:
        m = self.modes
        if m > shape[-1] // 2 + 1 or (self.dims == 2 and 2 * m > shape[-2]):
            raise UserInputError(f"modes={m} is too many for a grid of {tuple(shape)} points; "
                                 f"allowed: modes <= {shape[-1] // 2 + 1}"
                                 + (f" and 2*modes <= {shape[-2]}" if self.dims == 2 else "")
                                 + ".")

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """``(B, in, *grid) -> (B, out, *grid)``; modes outside the block are set to zero."""
        grid = tuple(v.shape[-self.dims:])
        self._check(grid)
        # FFTs in float32 for half-precision inputs (CPU FFTs have no float16), else native
        work = torch.float32 if v.dtype in (torch.float16, torch.bfloat16) else v.dtype
        m = self.modes
        w = torch.complex(self.weight_re.to(work), self.weight_im.to(work))
        axes = tuple(range(-self.dims, 0))
        v_hat = torch.fft.rfftn(v.to(work), dim=axes)  # (B, in, *grid[:-1], grid[-1]//2+1)
        out = v_hat.new_zeros(v.shape[0], w.shape[1], *v_hat.shape[2:])
        if self.dims == 1:
            out[..., :m] = torch.einsum("bik,iok->bok", v_hat[..., :m], w)
        else:  # low positive and negative frequencies along the first spatial axis
            low = torch.cat([v_hat[..., :m, :m], v_hat[..., -m:, :m]], dim=-2)  # (B,in,2m,m)
            mixed = torch.einsum("bikl,iokl->bokl", low, w)  # (B, out, 2m, m)
            out[..., :m, :m] = mixed[..., :m, :]
            out[..., -m:, :m] = mixed[..., m:, :]
        return torch.fft.irfftn(out, s=grid, dim=axes).to(v.dtype)


class FourierBlock(nn.Module):
    """Pre-norm residual Fourier layer modulated by ``c``: ``v + W_out GELU(K h + W h)``."""

    def __init__(self, width: int, modes: int, dims: int, emb: int, groups: int):
        super().__init__()
        conv = nn.Conv1d if dims == 1 else nn.Conv2d
        self.dims = dims
        self.norm = nn.GroupNorm(groups, width, affine=False)
        self.film = nn.Sequential(nn.SiLU(), nn.Linear(emb, 2 * width))
        self.spectral = SpectralConv(width, width, modes, dims)
        self.pointwise = conv(width, width, 1)
        self.out = conv(width, width, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, v: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Update ``v (B, width, *space)`` given ``c (B, E)``."""
        scale, shift = self.film(c).chunk(2, dim=-1)  # each (B, width)
        bshape = (*scale.shape, *([1] * self.dims))
        h = self.norm(v) * (1 + scale.reshape(bshape)) + shift.reshape(bshape)
        return v + self.out(F.gelu(self.spectral(h) + self.pointwise(h)))


class SpaceTimeFNO(ModelMixin, ConfigMixin):
    """Fourier-neural-operator denoiser over space with time folded into channels."""

    @register_to_config
    def __init__(
        self,
        in_channels: int = 4,  # channels C of x (fields × wavelet subbands)
        num_frames: int = 16,  # time size T of x (fixed: time is folded into channels)
        spatial_dims: int = 1,  # 1: x is (B, C, T, X); 2: (B, C, T, H, W)
        width: int = 96,  # channels of the Fourier layers
        modes: int = 16,  # lowest Fourier modes kept per space axis
        depth: int = 6,  # Fourier blocks
        proj_width: int = 256,  # hidden channels of the output projection
        num_heads: int = 4,  # cross-attention heads (text tokens)
        groups: int = 8,  # GroupNorm groups (must divide width)
        noise_embedding: str = "log_sigma",  # "log_sigma": c = ln(sigma)/4 (EDM); "t": sigma is t
        noise_scale: float = 1000.0,  # c is multiplied by this before the sinusoidal features
        freq_dim: int = 128,  # number of sinusoidal noise features
        param_dim: int = 0,  # PDE parameter vector size P (0 disables the slot)
        pooled_dim: int = 0,  # pooled text vector size D_text (0 disables the slot)
        token_dim: int = 0,  # conditioning token size D_tok (0 disables cross-attention)
        cond_channels: int = 0,  # conditioning field channels C_c (0 disables the slot)
    ):
        super().__init__()
        check_choice(spatial_dims, "spatial_dims", (1, 2))
        check_choice(noise_embedding, "noise_embedding", NOISE_EMBEDDINGS)
        check_int(width, "width", 1)
        if width % check_int(groups, "groups", 1):
            raise UserInputError(f"groups={groups} does not divide width={width}; choose a "
                                 f"width divisible by groups.")
        check_heads(width, num_heads, "width")
        n = spatial_dims + 1
        self.slots = Slots.checked(in_channels, n, cond_channels, param_dim,
                                   pooled_dim, token_dim)
        self.frames = check_int(num_frames, "num_frames", 1)
        conv = nn.Conv1d if spatial_dims == 1 else nn.Conv2d
        emb = 2 * width
        self.cond = GlobalConditioner(emb, freq_dim=check_int(freq_dim, "freq_dim", 2),
                                      noise_embedding=noise_embedding, noise_scale=noise_scale,
                                      param_dim=param_dim, pooled_dim=pooled_dim)
        self.lift = conv((in_channels + 2 * cond_channels) * num_frames, width, 1)
        self.blocks = nn.ModuleList(FourierBlock(width, modes, spatial_dims, emb, groups)
                                    for _ in range(check_int(depth, "depth", 1)))
        self.tokens = TokenEncoder(token_dim, width) if token_dim > 0 else None
        self.norm_x = nn.LayerNorm(width) if token_dim > 0 else None
        self.cross = Attention(width, num_heads) if token_dim > 0 else None
        self.norm_out = nn.GroupNorm(groups, width)
        self.proj = nn.Sequential(conv(width, proj_width, 1), nn.GELU(),
                                  conv(proj_width, in_channels * num_frames, 1))
        nn.init.zeros_(self.proj[2].weight)
        nn.init.zeros_(self.proj[2].bias)

    def _cross(self, v: torch.Tensor, ctx: torch.Tensor, ctx_mask: torch.Tensor) -> torch.Tensor:
        b, w, *s = v.shape
        t = v.flatten(2).transpose(1, 2)  # (B, N, width)
        t = t + self.cross(self.norm_x(t), ctx, ctx_mask)
        return t.transpose(1, 2).reshape(b, w, *s)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, *,
                params: torch.Tensor | None = None, pooled: torch.Tensor | None = None,
                tokens: torch.Tensor | None = None, token_mask: torch.Tensor | None = None,
                cond: torch.Tensor | None = None,
                cond_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Predict a tensor shaped like ``x (B, C, T, *space)``; slots as in ``SpaceTimeDiT``."""
        like = self.lift.weight
        inp = prepare(self.slots, like, x, sigma, params, pooled, tokens, token_mask, cond,
                      cond_mask)
        b, c_x, t, *space = x.shape
        if t != self.frames:
            raise UserInputError(f"x has {t} time steps but this FNO was built with "
                                 f"num_frames={self.frames} (time is folded into channels).")
        c = self.cond(inp.sigma, inp.params, inp.pooled)  # (B, E)
        v = self.lift(inp.x_in.flatten(1, 2))  # (B, width, *space)
        ctx = ctx_mask = None
        if self.tokens is not None:
            ctx, ctx_mask = self.tokens(inp.tokens, inp.token_mask, b)
        mid = len(self.blocks) // 2
        for i, block in enumerate(self.blocks):
            if i == mid and ctx is not None:
                v = self._cross(v, ctx, ctx_mask)
            v = block(v, c)
        out = self.proj(F.silu(self.norm_out(v)))  # (B, C*T, *space)
        return out.reshape(b, c_x, t, *space).to(x.dtype)
