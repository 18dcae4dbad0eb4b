"""``genphys inspect``: print a file's schema, shapes, parameter ranges and sample captions."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Attach ``genphys inspect`` to the top-level parser."""
    p = sub.add_parser("inspect", help="describe an HDF5 trajectory file",
                       description="Describe a genphys, The Well or PDEBench HDF5 file.")
    p.add_argument("file", help="HDF5 file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print :func:`genphys.data.describe` of the file."""
    from genphys.data import describe

    print(describe(args.file))
    return 0
