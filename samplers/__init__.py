"""Fast diffusion samplers behind one contract: ``denoise(x, sigma) -> x0_hat`` (VE coordinates).

This package imports torch only and never genphys.
"""
