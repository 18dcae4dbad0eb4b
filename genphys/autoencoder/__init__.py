"""Latent mesh autoencoder: fields on any mesh or point cloud ↔ a compact latent grid."""

from genphys.autoencoder.model import MeshAutoencoder
from genphys.autoencoder.neighbors import build_plan, interpolate, kernel_integral

__all__ = ["MeshAutoencoder", "build_plan", "interpolate", "kernel_integral"]
