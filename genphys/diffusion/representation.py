"""Model space of a trajectory: packed wavelet channels (WDNO layout, Hu et al. ICLR 2025).

``encode`` maps a trajectory ``(B, C, T, *space)`` to ``(B, C * 2**(d L), *S / 2**L)`` with
``genphys.wavelets`` (``wavedecn`` + ``pack``); ``decode`` inverts it exactly. With an
orthonormal wavelet (haar, db*, sym*, coif*) and ``periodization`` the map is orthogonal, so
white noise stays white and the diffusion prior is unchanged by the transform (DESIGN.md).
``level=0`` is the identity (pixel-space training with the same code path).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pywt
import torch
from torch import Tensor

from genphys.errors import UserInputError
from genphys.wavelets import WaveletChannels
from genphys.wavelets.functional import normalize_axes

__all__ = ["WaveletRepresentation"]


class WaveletRepresentation:
    """Trajectory <-> packed wavelet channels; config saved as a plain dict (``to_dict``)."""

    def __init__(self, wavelet: str = "db2",  # pywt name of a discrete wavelet
                 level: int = 1,  # DWT levels L (0 = identity)
                 axes: Sequence[int] = (-2, -1),  # transformed axes: (T, X); (-3, -2, -1) in 2D
                 mode: str = "periodization"):  # the only mode that packs into channels
        if not isinstance(level, int) or isinstance(level, bool) or level < 0:
            raise UserInputError(f"level={level!r} is invalid; allowed: an integer >= 0 "
                                 "(0 = no transform).")
        if not isinstance(wavelet, str) or wavelet not in pywt.wavelist(kind="discrete"):
            raise UserInputError(f"wavelet={wavelet!r} is not a discrete pywt wavelet; e.g. "
                                 "haar, db2, sym4, coif1, bior2.4.")
        if any(not isinstance(a, int) or a >= 0 or a < -8 for a in axes) or not axes:
            raise UserInputError(f"axes={tuple(axes)!r} is invalid; give negative trailing axes "
                                 "such as (-2, -1) for (T, X) or (-3, -2, -1) for (T, H, W).")
        self.wavelet, self.level, self.axes, self.mode = wavelet, level, tuple(axes), mode
        self.orthogonal = bool(pywt.Wavelet(wavelet).orthogonal)  # white noise stays white
        self._channels = WaveletChannels(wavelet, level, self.axes, mode) if level else None

    def __repr__(self) -> str:
        return f"WaveletRepresentation({self.to_dict()})"

    def _check(self, x: Tensor, what: str) -> None:
        if not torch.is_tensor(x) or x.ndim < 2 + len(self.axes):
            raise UserInputError(f"{what} must be a tensor (B, C, *grid) with at least "
                                 f"{len(self.axes)} grid axes, got "
                                 f"{getattr(x, 'shape', type(x).__name__)}.")
        normalize_axes(self.axes, x.ndim)
        if x.ndim + min(self.axes) < 2:
            raise UserInputError(f"axes={self.axes} reach the batch or channel dimension of a "
                                 f"{x.ndim}-d tensor.")

    def encode(self, x: Tensor) -> Tensor:
        """Trajectory ``(B, C, T, *space)`` -> packed channels ``(B, C', T', *space')``."""
        self._check(x, "x")
        return x if self._channels is None else self._channels(x)

    def decode(self, y: Tensor) -> Tensor:
        """Packed channels -> trajectory; exact inverse of :meth:`encode`."""
        self._check(y, "y")
        return y if self._channels is None else self._channels.inverse(y)

    def channels(self, c: int) -> int:
        """Model channels C' for C physical fields: ``C * 2**(d * level)``."""
        return int(c) * 2 ** (len(self.axes) * self.level)

    def shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        """Encoded shape of a trajectory shape ``(B, C, T, *space)`` (checks divisibility)."""
        shape = tuple(int(s) for s in shape)
        n, f = len(shape), 2**self.level
        axes = normalize_axes(self.axes, n)
        bad = [shape[a] for a in axes if shape[a] % f]
        if bad:
            raise UserInputError(f"grid sizes {bad} on axes {self.axes} are not divisible by "
                                 f"2**level = {f}; crop or pad the trajectories.")
        out = [s // f if i in axes else s for i, s in enumerate(shape)]
        out[1] = self.channels(shape[1])
        return tuple(out)

    def inverse_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        """Trajectory shape of an encoded shape (inverse of :meth:`shape`)."""
        shape = tuple(int(s) for s in shape)
        axes, f = normalize_axes(self.axes, len(shape)), 2**self.level
        out = [s * f if i in axes else s for i, s in enumerate(shape)]
        out[1] = shape[1] // 2 ** (len(self.axes) * self.level)
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able config (saved next to the model weights)."""
        return {"wavelet": self.wavelet, "level": self.level, "axes": list(self.axes),
                "mode": self.mode}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> WaveletRepresentation:
        """Rebuild from :meth:`to_dict` output; unknown keys are rejected."""
        valid = ("wavelet", "level", "axes", "mode")
        bad = [k for k in d if k not in valid]
        if bad:
            raise UserInputError(f"unknown representation keys {bad}; allowed: "
                                 f"{', '.join(valid)}.")
        return cls(**{**d, "axes": tuple(d.get("axes", (-2, -1)))})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WaveletRepresentation) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.wavelet, self.level, self.axes, self.mode))

    def __getstate__(self) -> dict[str, Any]:
        return self.to_dict()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**{**state, "axes": tuple(state["axes"])})
