"""Mesh autoencoder: fields on any point set ↔ a compact, normalized latent grid.

Encoder: per-node MLP lift → local kernel integral onto a regular grid (bucketed radius
neighbours, :mod:`genphys.autoencoder.neighbors`; graph kernel operator of Li et al. 2020
with mean aggregation, as in GINO, Li et al. 2023) → CNN that halves the grid ``levels``
times → ``latent_channels``. Decoder: CNN back to the grid → multilinear interpolation at
any query coordinates + local-offset and Fourier features (Tancik et al. 2020) → MLP.
Deterministic, with field and latent statistics stored as buffers next to the weights.
"""

from __future__ import annotations

import math

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from genphys.autoencoder.neighbors import Plan, build_plan, interpolate, kernel_integral
from genphys.errors import UserInputError

CONVS = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


class ResBlock(nn.Module):
    """Pre-activation residual block: GroupNorm → GELU → conv, twice."""

    def __init__(self, ch: int, dim: int, pad: str):
        super().__init__()
        conv = CONVS[dim]
        self.body = nn.Sequential(nn.GroupNorm(min(8, ch), ch), nn.GELU(),
                                  conv(ch, ch, 3, padding=1, padding_mode=pad),
                                  nn.GroupNorm(min(8, ch), ch), nn.GELU(),
                                  conv(ch, ch, 3, padding=1, padding_mode=pad))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x + body(x)`` for ``x (B, C, *grid)``."""
        return x + self.body(x)


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with GELU in between."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.GELU()]
    return nn.Sequential(*layers[:-1])


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise UserInputError(msg)


class MeshAutoencoder(ModelMixin, ConfigMixin):
    """Discretization-invariant autoencoder between nodal fields and a latent regular grid."""

    @register_to_config
    def __init__(
        self,
        in_channels: int = 1,  # field channels C
        dim: int = 2,  # spatial dimension d of the coordinates (1, 2 or 3)
        grid: tuple[int, ...] = (32, 16),  # kernel-integral grid, one size per coordinate axis
        levels: int = 1,  # CNN halvings: latent grid = grid / 2**levels
        latent_channels: int = 1,  # C_lat
        width: int = 32,  # hidden channels of lift, CNN and decoder MLP
        blocks: int = 1,  # residual blocks per level
        radius: float = 1.0,  # kernel radius in grid cells
        domain_lo: tuple[float, ...] = (0.0, 0.0),  # lower corner of the box the grid covers
        domain_hi: tuple[float, ...] = (2.0, 1.0),  # upper corner
        periodic: bool = False,  # wrap the box (circular convs, wrapped neighbours)
        n_freq: int = 4,  # Fourier features per axis of the absolute query coordinates
    ):
        super().__init__()
        grid = tuple(int(g) for g in grid)
        _check(dim in (1, 2, 3), f"dim={dim} is not allowed; use 1, 2 or 3.")
        _check(len(grid) == dim and len(domain_lo) == dim and len(domain_hi) == dim,
               f"grid={grid}, domain_lo={tuple(domain_lo)}, domain_hi={tuple(domain_hi)} must "
               f"each have dim={dim} entries.")
        _check(all(g % 2**levels == 0 and g >= 2**levels for g in grid),
               f"grid={grid} must be divisible by 2**levels={2**levels} on every axis.")
        _check(all(h > lo for lo, h in zip(domain_lo, domain_hi)),
               f"domain_hi={tuple(domain_hi)} must exceed domain_lo={tuple(domain_lo)}.")
        _check(radius > 0, f"radius={radius} is not allowed; use a positive number of cells.")
        pad = "circular" if periodic else "zeros"
        conv = CONVS[dim]
        self.lift = mlp([in_channels, width, width])
        self.mix = conv(width * (1 + dim) + 1, width, 1)
        down: list[nn.Module] = []
        up: list[nn.Module] = []
        for _ in range(levels):
            down += [ResBlock(width, dim, pad) for _ in range(blocks)]
            down += [conv(width, width, 3, stride=2, padding=1, padding_mode=pad)]
            up += [nn.Upsample(scale_factor=2, mode="nearest"),
                   conv(width, width, 3, padding=1, padding_mode=pad)]
            up += [ResBlock(width, dim, pad) for _ in range(blocks)]
        self.down = nn.Sequential(*down, ResBlock(width, dim, pad), nn.GroupNorm(min(8, width),
                                  width), nn.GELU(), conv(width, latent_channels, 1))
        self.up = nn.Sequential(conv(latent_channels, width, 3, padding=1, padding_mode=pad),
                                ResBlock(width, dim, pad), *up)
        self.head = mlp([width + dim + 2 * dim * n_freq, width, width, in_channels])
        self.register_buffer("lo", torch.tensor(domain_lo, dtype=torch.float32))
        self.register_buffer("hi", torch.tensor(domain_hi, dtype=torch.float32))
        self.register_buffer("field_mean", torch.zeros(in_channels))
        self.register_buffer("field_std", torch.ones(in_channels))
        self.register_buffer("latent_mean", torch.zeros(latent_channels))
        self.register_buffer("latent_std", torch.ones(latent_channels))
        self._plans: dict[tuple, Plan] = {}

    # ------------------------------------------------------------- shapes and stats
    @property
    def latent_shape(self) -> tuple[int, ...]:
        """``(C_lat, *latent_grid)`` of one encoded frame."""
        c = self.config
        return (c.latent_channels, *(int(g) // 2**c.levels for g in c.grid))

    def set_field_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store per-channel field statistics ``(C,)`` used to normalize inputs/outputs."""
        self.field_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.field_std.copy_(torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-8))

    def set_latent_stats(self, latents: torch.Tensor) -> None:
        """Store per-channel mean/std of raw latents ``(B, C_lat, *grid)`` (normalization)."""
        x = latents.transpose(0, 1).flatten(1)  # (C_lat, B*G)
        self.latent_mean.copy_(x.mean(1))
        self.latent_std.copy_(x.std(1).clamp_min(1e-8))

    def _check_inputs(self, coords: torch.Tensor, fields: torch.Tensor | None) -> None:
        d, c = self.config.dim, self.config.in_channels
        _check(coords.ndim == 3 and coords.shape[-1] == d,
               f"coords of shape {tuple(coords.shape)} are not allowed; expected (B, N, {d}).")
        if fields is not None:
            _check(fields.shape == (*coords.shape[:2], c),
                   f"fields of shape {tuple(fields.shape)} do not match coords "
                   f"{tuple(coords.shape)}; expected (B, N, {c}).")

    # ------------------------------------------------------------- encoder
    def plan(self, coords: torch.Tensor, mask: torch.Tensor | None = None) -> Plan:
        """Neighbour plan of ``coords (B, N, d)`` (the bucketed radius search)."""
        c = self.config
        return build_plan(coords.to(self.lo), mask, tuple(c.grid), self.lo, self.hi,
                          float(c.radius), bool(c.periodic))

    def encode(self, coords: torch.Tensor, fields: torch.Tensor,
               mask: torch.Tensor | None = None, normalize: bool = True,
               plan: Plan | None = None) -> torch.Tensor:
        """Fields ``(B, N, C)`` at ``coords (B, N, d)`` (mask ``(B, N)``) → ``(B, C_lat, *g)``."""
        self._check_inputs(coords, fields)
        plan = self.plan(coords, mask) if plan is None else plan
        v = self.lift((fields.to(self.lo) - self.field_mean) / self.field_std)  # (B, N, W)
        mom, wsum = kernel_integral(plan, v)  # (B*G, W*(1+d)), (B*G,)
        mean = mom / wsum.clamp_min(1e-6)[:, None]  # mean aggregation
        occupied = (wsum > 1e-6).to(mean)[:, None]  # which cells saw any node
        grid = tuple(self.config.grid)
        h = torch.cat([mean, occupied], 1).reshape(coords.shape[0], *grid, -1)  # (B, *g, F)
        h = self.mix(h.movedim(-1, 1))  # (B, W, *grid)
        z = self.down(h)
        if normalize:
            z = (z - self._lat(self.latent_mean)) / self._lat(self.latent_std)
        return z

    def _lat(self, v: torch.Tensor) -> torch.Tensor:
        return v.reshape(1, -1, *([1] * self.config.dim))  # (1, C_lat, 1, ...)

    def encode_grid(self, fields: torch.Tensor, axes: list[torch.Tensor] | None = None,
                    normalize: bool = True) -> torch.Tensor:
        """Fast path for regular grids: ``fields (B, C, *space)`` → latent; cached neighbours.

        ``axes`` are the node coordinates per axis (default: cell centres of the box); the
        neighbour plan is computed once per grid and reused, so no per-call search runs.
        """
        b, c, *space = fields.shape
        _check(len(space) == self.config.dim and c == self.config.in_channels,
               f"grid fields of shape {tuple(fields.shape)} are not allowed; expected "
               f"(B, {self.config.in_channels}, *space) with {self.config.dim} space axes.")
        coords = self.grid_coords(space, axes)  # (N, d)
        key = (tuple(space), b, coords.device, float(coords.sum()))
        if key not in self._plans:
            self._plans = {key: self.plan(coords[None].expand(b, -1, -1))}
        flat = fields.flatten(2).transpose(1, 2)  # (B, N, C)
        return self.encode(coords[None].expand(b, -1, -1), flat, None, normalize,
                           plan=self._plans[key])

    def grid_coords(self, space: list[int] | tuple[int, ...],
                    axes: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Node coordinates ``(prod(space), d)`` of a regular grid (row-major, axis 0 slowest)."""
        if axes is None:
            axes = [self.lo[i] + (self.hi[i] - self.lo[i]) * (torch.arange(n, device=self.lo.device)
                    + 0.5) / n for i, n in enumerate(space)]
        mesh = torch.meshgrid(*[a.to(self.lo) for a in axes], indexing="ij")
        return torch.stack(mesh, -1).reshape(-1, len(space))  # (N, d)

    # ------------------------------------------------------------- decoder
    def decode(self, latent: torch.Tensor, coords: torch.Tensor, normalized: bool = True,
               physical: bool = True) -> torch.Tensor:
        """Latent ``(B, C_lat, *g)`` → field values ``(B, Q, C)`` at ``coords (B, Q, d)``."""
        self._check_inputs(coords, None)
        _check(tuple(latent.shape[1:]) == self.latent_shape,
               f"latent of shape {tuple(latent.shape)} is not allowed; expected "
               f"(B, {', '.join(map(str, self.latent_shape))}).")
        if normalized:
            latent = latent * self._lat(self.latent_std) + self._lat(self.latent_mean)
        feat = self.up(latent)  # (B, W, *grid)
        coords = coords.to(self.lo)
        val, local = interpolate(feat, coords, self.lo, self.hi, bool(self.config.periodic))
        y = self.head(torch.cat([val, local, self.fourier(coords)], -1))  # (B, Q, C)
        return y * self.field_std + self.field_mean if physical else y

    def fourier(self, coords: torch.Tensor) -> torch.Tensor:
        """sin/cos features of the box-normalized coordinates, frequencies π·1..n_freq."""
        u = (coords - self.lo) / (self.hi - self.lo)  # (B, Q, d) in [0, 1]
        k = torch.arange(1, self.config.n_freq + 1, device=u.device, dtype=u.dtype) * math.pi
        if self.config.periodic:
            k = 2 * k
        a = (u[..., None] * k).flatten(-2)  # (B, Q, d*n_freq)
        return torch.cat([torch.sin(a), torch.cos(a)], -1)

    def forward(self, coords: torch.Tensor, fields: torch.Tensor,
                mask: torch.Tensor | None = None, query: torch.Tensor | None = None,
                physical: bool = True) -> torch.Tensor:
        """Reconstruction ``(B, Q, C)`` at ``query`` (default: the input ``coords``)."""
        z = self.encode(coords, fields, mask, normalize=False)
        return self.decode(z, coords if query is None else query, normalized=False,
                           physical=physical)

    # ------------------------------------------------------------- trajectories
    def encode_trajectory(self, coords: torch.Tensor, fields: torch.Tensor,
                          mask: torch.Tensor | None = None) -> torch.Tensor:
        """Frames ``(B, T, N, C)`` encoded independently → normalized ``(B, T, C_lat, *g)``."""
        t = fields.shape[1]
        plan = self.plan(coords, mask)  # the same mesh for every frame of a trajectory
        out = []
        for i in range(t):  # one frame per pass: the plan is shared, memory stays O(B*N)
            out.append(self.encode(coords, fields[:, i], mask, plan=plan))
        return torch.stack(out, 1)  # (B, T, C_lat, *g)

    def decode_trajectory(self, latents: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """Normalized latents ``(B, T, C_lat, *g)`` → fields ``(B, T, Q, C)`` at ``coords``."""
        b, t = latents.shape[:2]
        q = coords[:, None].expand(-1, t, -1, -1).reshape(b * t, *coords.shape[1:])  # (B*T,Q,d)
        y = self.decode(latents.reshape(b * t, *latents.shape[2:]), q)  # (B*T, Q, C)
        return y.reshape(b, t, *y.shape[1:])
