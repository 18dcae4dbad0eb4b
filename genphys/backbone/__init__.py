"""Space–time diffusion backbones over wavelet-channel grids (DiT, compact UNet, FNO).

All take ``forward(x, sigma, *, params, pooled, tokens, token_mask, cond, cond_mask)``
and return a tensor shaped like ``x``; see docs/backbone.md.
"""

from genphys.backbone.dit import SpaceTimeDiT
from genphys.backbone.fno import SpaceTimeFNO, SpectralConv
from genphys.backbone.patchify import patchify, unpatchify
from genphys.backbone.unet import SpaceTimeUNet

__all__ = ["SpaceTimeDiT", "SpaceTimeFNO", "SpaceTimeUNet", "SpectralConv", "patchify",
           "unpatchify"]
