"""Exact, differentiable, multi-level torch DWT over any axes (pywavelets filters and modes)."""

from genphys.wavelets.filters import MODES, FilterBank, filter_bank
from genphys.wavelets.functional import dwtn, idwtn, wavedecn, waverecn

__all__ = ["MODES", "FilterBank", "filter_bank", "dwtn", "idwtn", "wavedecn", "waverecn"]
