"""``genphys data``: generate a dataset of solver trajectories with captions, list systems, or
merge shards generated with different run seeds."""

from __future__ import annotations

import argparse
import sys

from genphys.errors import UserInputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Attach ``genphys data`` to the top-level parser."""
    p = sub.add_parser(
        "data",
        help="generate solver trajectories with captions into an HDF5 file",
        description="Generate trajectories of a PDE system with its reference solver. "
        "Grid systems are written in The Well's HDF5 schema, mesh systems in genphys's "
        "mesh schema; every trajectory carries its parameters, seed and captions.",
    )
    p.add_argument("system", nargs="?", help="system name (see --list)")
    p.add_argument("--list", action="store_true", help="list systems and their parameters")
    p.add_argument("--num", type=int, default=None, help="number of trajectories")
    p.add_argument("--out", default=None, help="output HDF5 file")
    p.add_argument("--seed", type=int, default=None,
                   help="run seed (trajectory i is fixed by it; default 0)")
    p.add_argument("--batch-size", type=int, default=None, help="trajectories solved at once")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field (nx=256), fix a parameter (nu=0.01) or "
                   "narrow its range (nu_min=0.005); repeatable")
    p.add_argument("--merge", nargs="+", metavar="FILE", default=None,
                   help="instead of generating, concatenate these files (shards of one system "
                   "made with different --seed) into --out")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def parse_overrides(items: list[str]) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; one clear error for a malformed item."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UserInputError(f"--set expects KEY=VALUE, got {item!r}.")
        out[key.strip()] = value.strip()
    return out


def list_systems() -> str:
    """A table of every system, its parameters with ranges/defaults, and its config options."""
    import dataclasses

    from genphys.physics import SYSTEM_MODULES, system_class

    lines = []
    for name in SYSTEM_MODULES:
        cls = system_class(name)
        lines.append(f"{name}: {cls.description}")
        lines.append(f"  fields: {', '.join(cls.field_names)}")
        for p in cls.param_specs:
            dist = "log-uniform" if p.log else "uniform"
            doc = f"  {p.doc}" if p.doc else ""
            lines.append(f"  param {p.name:<10} default {p.default:<8g} range "
                         f"[{p.low:g}, {p.high:g}] {dist}{doc}")
        opts = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(cls.Config))
        lines.append(f"  config: {opts}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def run(args: argparse.Namespace) -> int:
    """Generate ``--num`` trajectories of ``system`` into ``--out``."""
    if args.list:
        sys.stdout.write(list_systems())
        return 0
    if args.merge is not None:
        return run_merge(args)
    if not args.system:
        raise UserInputError("give a system name (see `genphys data --list`).")
    if args.num is None or args.num < 1:
        raise UserInputError(f"--num must be a positive integer, got {args.num}.")
    if not args.out:
        raise UserInputError("--out FILE is required.")
    if args.batch_size is not None and args.batch_size < 1:
        raise UserInputError(f"--batch-size must be a positive integer, got {args.batch_size}.")
    seed = 0 if args.seed is None else args.seed

    import dataclasses

    from tqdm.auto import tqdm

    from genphys.physics import get_system

    system = get_system(args.system, **parse_overrides(args.overrides))

    from genphys.data import write_trajectories
    from genphys.data.writer import check_target

    check_target(args.out, args.overwrite)  # fail before any solving
    bar = tqdm(total=args.num, desc=f"{args.system}", unit="traj", disable=args.no_progress)
    batches = system.iter_batches(args.num, seed=seed, batch_size=args.batch_size,
                                  progress=bar.update)
    try:
        path = write_trajectories(args.out, batches, system_name=args.system,
                                  overwrite=args.overwrite,
                                  attrs={"seed": seed, "overrides": args.overrides,
                                         "config": dataclasses.asdict(system.config)})
    finally:
        bar.close()
    print(f"wrote {args.num} {args.system} trajectories to {path}")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    """``--merge A.h5 B.h5 --out C.h5``: join shards into one file."""
    if args.system or args.num is not None or args.overrides or args.seed is not None:
        raise UserInputError("--merge takes input files, --out, --overwrite and --batch-size "
                             "only; drop the system name, --num, --seed and --set.")
    if args.batch_size is not None and args.batch_size < 1:
        raise UserInputError(f"--batch-size must be a positive integer, got {args.batch_size}.")
    if not args.out:
        raise UserInputError("--out FILE is required.")

    from genphys.data.merge import merge_trajectories
    from genphys.data.reader import open_trajectories

    path = merge_trajectories(args.out, args.merge, overwrite=args.overwrite,
                              batch_size=args.batch_size or 32)
    with open_trajectories(path) as f:
        print(f"wrote {len(f)} {f.system} trajectories from {len(args.merge)} files to {path}")
    return 0
