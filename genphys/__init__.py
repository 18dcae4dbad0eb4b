"""genphys: diffusion-based generative PDE simulation."""

__version__ = "0.1.0"
