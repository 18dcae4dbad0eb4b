"""Filter banks from pywavelets (Lee et al., "PyWavelets", JOSS 2019), modes and lengths."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import pywt
import torch

from genphys.errors import UserInputError

MODES = ("periodization", "symmetric", "zero")


@dataclass(frozen=True)
class FilterBank:
    """The four filters of a discrete wavelet (pywavelets convention), as exact float64 taps."""

    name: str
    dec_lo: tuple[float, ...]
    dec_hi: tuple[float, ...]
    rec_lo: tuple[float, ...]
    rec_hi: tuple[float, ...]
    orthogonal: bool  # True: W^T W = I in periodization mode (white noise stays white)

    @property
    def length(self) -> int:
        """Filter length F (even for every pywavelets discrete wavelet)."""
        return len(self.dec_lo)

    def taps(self) -> torch.Tensor:
        """The filters stacked as a float64 tensor ``(4, F)``: dec_lo, dec_hi, rec_lo, rec_hi."""
        return torch.tensor([self.dec_lo, self.dec_hi, self.rec_lo, self.rec_hi],
                            dtype=torch.float64)


def _suggest() -> str:
    return ("haar, db2-db38, sym2-sym20, coif1-coif17, bior2.4, rbio2.2, dmey "
            "(all: pywt.wavelist(kind='discrete'))")


@functools.cache
def _bank_from_name(name: str) -> FilterBank:
    if name not in pywt.wavelist(kind="discrete"):
        raise UserInputError(f"Unknown wavelet {name!r}; use a discrete pywavelets name such as "
                             f"{_suggest()}.")
    return _bank_from_pywt(pywt.Wavelet(name))


def _bank_from_pywt(w: pywt.Wavelet) -> FilterBank:
    filters = [tuple(float(v) for v in f) for f in (w.dec_lo, w.dec_hi, w.rec_lo, w.rec_hi)]
    if len({len(f) for f in filters}) != 1 or len(filters[0]) % 2:
        raise UserInputError(f"Wavelet {w.name!r} has filters of unequal or odd length; "
                             f"use a pywavelets discrete wavelet such as {_suggest()}.")
    return FilterBank(w.name, *filters, orthogonal=bool(w.orthogonal))


def filter_bank(wavelet: str | pywt.Wavelet | FilterBank) -> FilterBank:
    """Resolve a wavelet name, a ``pywt.Wavelet`` or a :class:`FilterBank` to a FilterBank."""
    if isinstance(wavelet, FilterBank):
        return wavelet
    if isinstance(wavelet, pywt.Wavelet):
        return _bank_from_pywt(wavelet)
    if isinstance(wavelet, str):
        return _bank_from_name(wavelet)
    raise UserInputError(f"wavelet={wavelet!r} is not a wavelet name; use a discrete pywavelets "
                         f"name such as {_suggest()}.")


def check_mode(mode: str) -> str:
    """Return ``mode`` if it is a supported extension mode, else raise UserInputError."""
    if mode not in MODES:
        raise UserInputError(f"mode={mode!r} is not supported; use one of {', '.join(MODES)}.")
    return mode


def coeff_len(n: int, filt_len: int, mode: str) -> int:
    """Coefficients per band of a length-n axis (as ``pywt.dwt_coeff_len``)."""
    return n // 2 if mode == "periodization" else (n + filt_len - 1) // 2


def rec_len(n: int, filt_len: int, mode: str) -> int:
    """Length of the signal reconstructed from n coefficients per band (as pywt.idwt)."""
    return 2 * n if mode == "periodization" else 2 * n - filt_len + 2


def max_level(n: int) -> int:
    """The largest level allowed on an axis of length n: floor(log2(n)) halvings."""
    return int(math.floor(math.log2(n))) if n >= 1 else 0
