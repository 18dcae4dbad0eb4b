"""Parameter-free ``nn.Module`` wrappers: :class:`DWT`, :class:`IDWT`, :class:`WaveletChannels`.

The filters are registered as non-persistent float64 buffers (they follow ``.to(device)``,
never enter a ``state_dict``, and stay float64 under ``.half()``/``.to(dtype)``: the
transform itself always runs in the input's dtype, float16/bfloat16 upcast to float32).
"""

from __future__ import annotations

from collections.abc import Sequence

import pywt
import torch
from torch import nn

from genphys.errors import UserInputError
from genphys.wavelets.filters import FilterBank, check_mode, filter_bank
from genphys.wavelets.functional import Coeffs, wavedecn, waverecn
from genphys.wavelets.packing import pack, unpack


class _WaveletModule(nn.Module):
    """Shared configuration: wavelet, level, axes and mode (validated at construction)."""

    def __init__(self, wavelet: str | pywt.Wavelet | FilterBank = "haar",  # pywt name or bank
                 level: int = 1,  # number of DWT levels L >= 1
                 axes: Sequence[int] = (-2, -1),  # transformed dims (e.g. time, space)
                 mode: str = "periodization"):  # periodization | symmetric | zero
        super().__init__()
        if not isinstance(level, int) or isinstance(level, bool) or level < 1:
            raise UserInputError(f"level={level!r} is invalid; use an integer >= 1.")
        self.bank = filter_bank(wavelet)
        self.level, self.axes, self.mode = level, tuple(axes), check_mode(mode)
        self.register_buffer("filters", self.bank.taps(), persistent=False)  # (4, F) float64

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        self.filters = self.bank.taps().to(self.filters.device)  # keep the exact float64 taps
        return self

    def extra_repr(self) -> str:
        """Configuration shown by ``print(module)``."""
        return f"wavelet={self.bank.name!r}, level={self.level}, axes={self.axes}, " \
               f"mode={self.mode!r}"


class DWT(_WaveletModule):
    """Multi-level n-D DWT returning a ``pywt.wavedecn``-style pyramid (coarsest first)."""

    def forward(self, x: torch.Tensor) -> Coeffs:
        """``x -> [approx, {details}_L, ..., {details}_1]`` over ``self.axes``."""
        return wavedecn(x, self.bank, self.level, self.axes, self.mode)


class IDWT(_WaveletModule):
    """Inverse of :class:`DWT` (``pywt.waverecn`` semantics)."""

    def forward(self, coeffs: Coeffs) -> torch.Tensor:
        """``[approx, {details}, ...] -> x``."""
        return waverecn(coeffs, self.bank, self.axes, self.mode)


class WaveletChannels(_WaveletModule):
    """Field tensor <-> packed wavelet channels (WDNO layout; see :mod:`.packing`).

    ``forward`` maps ``(B, C, *S)`` to ``(B, C * 2**(d*L), *S / 2**L)``; ``inverse`` maps
    back.  With an orthonormal wavelet and ``periodization`` this is an orthogonal map, so
    white noise in channel space is white noise in field space.
    """

    def __init__(self, wavelet: str | pywt.Wavelet | FilterBank = "haar",  # pywt name or bank
                 level: int = 1,  # number of DWT levels L >= 1
                 axes: Sequence[int] = (-2, -1),  # transformed dims, channel dim excluded
                 mode: str = "periodization",  # packing needs exact halving: periodization
                 channel_dim: int = 1):  # dim that receives the subbands
        super().__init__(wavelet, level, axes, mode)
        if mode != "periodization":
            raise UserInputError(f"WaveletChannels needs mode='periodization', got {mode!r}: "
                                 "other modes give subbands that do not halve exactly.")
        self.channel_dim = channel_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Field ``(B, C, *S)`` -> channels ``(B, C * 2**(d*L), *S / 2**L)``."""
        coeffs = wavedecn(x, self.bank, self.level, self.axes, self.mode)
        return pack(coeffs, self.axes, self.channel_dim)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Channels ``(B, C * 2**(d*L), *S / 2**L)`` -> field ``(B, C, *S)``."""
        coeffs = unpack(y, self.level, self.axes, self.channel_dim)
        return waverecn(coeffs, self.bank, self.axes, self.mode)
