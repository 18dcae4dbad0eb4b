"""Plots of trajectories: x–t images, 2D frames, mesh tripcolor."""

from genphys.viz.plot import plot_file, plot_grid_1d, plot_grid_2d, plot_mesh

__all__ = ["plot_file", "plot_grid_1d", "plot_grid_2d", "plot_mesh"]
