"""Exact, differentiable, multi-level torch DWT over any axes (pywavelets filters and modes).

See ``docs/wavelets.md``.  Functional API mirroring pywavelets (:func:`wavedecn`,
:func:`waverecn`, :func:`dwtn`, :func:`idwtn`), modules (:class:`DWT`, :class:`IDWT`,
:class:`WaveletChannels`), packing into channels and multi-resolution helpers.
"""

from genphys.wavelets.filters import MODES, FilterBank, filter_bank
from genphys.wavelets.functional import dwtn, idwtn, wavedecn, waverecn
from genphys.wavelets.multires import (
    amplitude_gain,
    downsample,
    drop_levels,
    upsample,
    zero_levels,
)
from genphys.wavelets.packing import depth_to_space, pack, space_to_depth, unpack
from genphys.wavelets.transform import DWT, IDWT, WaveletChannels

__all__ = [
    "MODES", "FilterBank", "filter_bank",
    "dwtn", "idwtn", "wavedecn", "waverecn",
    "DWT", "IDWT", "WaveletChannels",
    "pack", "unpack", "space_to_depth", "depth_to_space",
    "amplitude_gain", "downsample", "upsample", "drop_levels", "zero_levels",
]
