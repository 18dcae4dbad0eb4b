"""Data layer: HDF5 storage (The Well schema for grids, our mesh schema), readers for
PDEBench and The Well, a torch dataset with seed-hash splits and cached normalization.

See ``docs/data.md`` for the schemas and examples.
"""

from genphys.data.dataset import TrajectoryDataset, seed_split
from genphys.data.describe import describe
from genphys.data.export import export_mesh
from genphys.data.merge import merge_trajectories
from genphys.data.normalize import Stats
from genphys.data.reader import TrajectoryFile, open_trajectories
from genphys.data.writer import import_pdebench, write_trajectories

__all__ = [
    "Stats",
    "TrajectoryDataset",
    "TrajectoryFile",
    "describe",
    "export_mesh",
    "import_pdebench",
    "merge_trajectories",
    "open_trajectories",
    "seed_split",
    "write_trajectories",
]
