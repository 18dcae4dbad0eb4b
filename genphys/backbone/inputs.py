"""Checks and preparation of the backbones' forward inputs (one place for both models).

Every bad input raises :class:`genphys.errors.UserInputError` with one sentence naming the
bad value and what is allowed. Inputs are cast to the model's dtype and device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genphys.backbone.config import check_int
from genphys.errors import UserInputError


@dataclass(frozen=True)
class Slots:
    """The configured input sizes of a backbone (0 disables a conditioning slot)."""

    in_channels: int  # channels C of x
    n_axes: int  # grid axes after (B, C): 2 for (T, X), 3 for (T, H, W)
    cond_channels: int = 0  # conditioning field channels C_c
    param_dim: int = 0  # PDE parameter vector size P
    pooled_dim: int = 0  # pooled text vector size
    token_dim: int = 0  # conditioning token size D_tok

    @classmethod
    def checked(cls, in_channels: int, n_axes: int, cond_channels: int = 0, param_dim: int = 0,
                pooled_dim: int = 0, token_dim: int = 0) -> Slots:
        """Slots from constructor arguments, each checked (one-sentence errors)."""
        return cls(check_int(in_channels, "in_channels", 1), n_axes,
                   check_int(cond_channels, "cond_channels"), check_int(param_dim, "param_dim"),
                   check_int(pooled_dim, "pooled_dim"), check_int(token_dim, "token_dim"))


@dataclass
class Prepared:
    """Validated inputs: ``x_in`` is x with the masked conditioning channels concatenated."""

    x_in: torch.Tensor  # (B, C + 2 C_c, *S)
    sigma: torch.Tensor  # (B,)
    params: torch.Tensor | None  # (B, P)
    pooled: torch.Tensor | None  # (B, D_text)
    tokens: torch.Tensor | None  # (B, L, D_tok)
    token_mask: torch.Tensor | None  # (B, L) bool, True = real token


def _check_x(x: torch.Tensor, s: Slots) -> None:
    if not torch.is_tensor(x) or x.ndim != 2 + s.n_axes:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        layout = {2: "(B, C, T, X)", 3: "(B, C, T, H, W)"}.get(
            s.n_axes, f"(B, C) + {s.n_axes} grid axes")
        raise UserInputError(f"x has shape {shape} but this model takes {layout} tensors.")
    if x.shape[1] != s.in_channels:
        raise UserInputError(
            f"x has {x.shape[1]} channels but the model was configured with in_channels="
            f"{s.in_channels}.")


def _sigma(sigma: torch.Tensor | float, b: int, like: torch.Tensor) -> torch.Tensor:
    sigma = torch.as_tensor(sigma, dtype=like.dtype, device=like.device)
    if sigma.ndim == 0:
        sigma = sigma.expand(b)
    if sigma.shape != (b,):
        raise UserInputError(f"sigma has shape {tuple(sigma.shape)}; allowed: ({b},) or scalar.")
    return sigma


def _vector(v: torch.Tensor | None, b: int, dim: int, name: str, dim_name: str,
            like: torch.Tensor) -> torch.Tensor | None:
    if v is None:
        return None
    if dim == 0:
        raise UserInputError(f"{name} was given but the model was built with {dim_name}=0; "
                             f"rebuild it with {dim_name}>0 or pass {name}=None.")
    v = torch.as_tensor(v)
    if v.shape != (b, dim):
        raise UserInputError(f"{name} has shape {tuple(v.shape)}; expected ({b}, {dim}).")
    return v.to(like)


def _tokens(tokens: torch.Tensor | None, mask: torch.Tensor | None, b: int, dim: int,
            like: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    if tokens is None:
        if mask is not None:
            raise UserInputError("token_mask was given without tokens; pass both or neither.")
        return None, None
    if dim == 0:
        raise UserInputError("tokens were given but the model was built with token_dim=0; "
                             "rebuild it with token_dim>0 or pass tokens=None.")
    if tokens.ndim != 3 or tokens.shape[0] != b or tokens.shape[2] != dim:
        raise UserInputError(
            f"tokens have shape {tuple(tokens.shape)}; expected ({b}, L, {dim}).")
    if mask is not None and mask.shape != tokens.shape[:2]:
        raise UserInputError(f"token_mask has shape {tuple(mask.shape)}; expected "
                             f"{tuple(tokens.shape[:2])} (True = real token, False = padding).")
    mask = None if mask is None else mask.to(device=like.device, dtype=torch.bool)
    return tokens.to(like), mask


def _cond(x: torch.Tensor, cond: torch.Tensor | None, cond_mask: torch.Tensor | None,
          cc: int) -> torch.Tensor:
    """Concatenate ``[x, cond * mask, mask]`` → ``(B, C + 2 C_c, *S)`` (zeros when absent)."""
    if cc == 0:
        if cond is not None or cond_mask is not None:
            raise UserInputError("cond/cond_mask were given but the model was built with "
                                 "cond_channels=0; rebuild it with cond_channels>0.")
        return x
    grid = (x.shape[0], cc, *x.shape[2:])
    if cond is None:
        if cond_mask is not None:
            raise UserInputError("cond_mask was given without cond; pass both or neither.")
        return torch.cat([x, x.new_zeros(grid), x.new_zeros(grid)], dim=1)
    if tuple(cond.shape) != grid:
        raise UserInputError(f"cond has shape {tuple(cond.shape)}; expected {grid}.")
    cond = cond.to(x)
    mask = torch.ones_like(cond) if cond_mask is None else cond_mask.to(x)
    if mask.ndim != len(grid) or mask.shape[1] not in (1, cc) or mask.shape[2:] != cond.shape[2:] \
            or mask.shape[0] != grid[0]:
        raise UserInputError(f"cond_mask has shape {tuple(mask.shape)}; expected "
                             f"({grid[0]}, 1 or {cc}, {', '.join(map(str, grid[2:]))}).")
    mask = mask.expand(grid)  # (B, C_c, *S)
    return torch.cat([x, cond * mask, mask], dim=1)


def prepare(slots: Slots, like: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor | float,
            params: torch.Tensor | None = None, pooled: torch.Tensor | None = None,
            tokens: torch.Tensor | None = None, token_mask: torch.Tensor | None = None,
            cond: torch.Tensor | None = None,
            cond_mask: torch.Tensor | None = None) -> Prepared:
    """Validate every forward input against ``slots`` and cast to the dtype/device of ``like``."""
    _check_x(x, slots)
    b = x.shape[0]
    tokens, token_mask = _tokens(tokens, token_mask, b, slots.token_dim, like)
    return Prepared(
        x_in=_cond(x.to(like), cond, cond_mask, slots.cond_channels),
        sigma=_sigma(sigma, b, like),
        params=_vector(params, b, slots.param_dim, "params", "param_dim", like),
        pooled=_vector(pooled, b, slots.pooled_dim, "pooled", "pooled_dim", like),
        tokens=tokens,
        token_mask=token_mask,
    )
