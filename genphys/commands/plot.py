"""``genphys plot``: picture one trajectory (x–t image, 2D frames, or mesh tripcolor)."""

from __future__ import annotations

import argparse

from genphys.errors import UserInputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Attach ``genphys plot`` to the top-level parser."""
    p = sub.add_parser("plot", help="plot one trajectory of an HDF5 file to a PNG",
                       description="Plot trajectory INDEX: an x–t image for 1D grids, a row of "
                       "frames for 2D grids, tripcolor frames for meshes.")
    p.add_argument("file", help="HDF5 file")
    p.add_argument("--index", type=int, default=0, help="trajectory index (default 0)")
    p.add_argument("--out", required=True, help="output image (.png, .pdf, .svg)")
    p.add_argument("--field", default=None, help="field name (default: the first)")
    p.add_argument("--frames", type=int, default=5, help="frames shown for 2D/mesh data")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Plot trajectory ``--index`` of ``file`` into ``--out``."""
    if args.frames < 1:
        raise UserInputError(f"--frames must be at least 1, got {args.frames}.")
    from genphys.viz import plot_file

    path = plot_file(args.file, args.index, args.out, field=args.field, frames=args.frames)
    print(f"wrote {path}")
    return 0
