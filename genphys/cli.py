"""The ``genphys`` command line: parses arguments and calls one function per subcommand.

Each subcommand lives in ``genphys/commands/<name>.py`` with ``add_parser(subparsers)``
and ``run(args) -> int``. Errors caused by user input are printed as one sentence
(no traceback) and give a non-zero exit status.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

import genphys
from genphys.errors import GenphysError

# subcommand name -> module under genphys.commands (imported lazily to keep --help fast)
COMMANDS: dict[str, str] = {
    "data": "data",
    "eval": "eval",
    "generate": "generate",
    "inspect": "inspect",
    "plot": "plot",
    "rollout": "rollout",
    "train": "train",
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand attached."""
    parser = argparse.ArgumentParser(
        prog="genphys",
        description="Diffusion-based generative PDE simulation.",
    )
    parser.add_argument("--version", action="version", version=f"genphys {genphys.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS.values():
        importlib.import_module(f"genphys.commands.{module}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``genphys`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except GenphysError as e:
        print(f"genphys {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly like other tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # unreadable/unwritable paths, full disk: still one sentence
        print(f"genphys {args.command}: error: {e.strerror or e}"
              + (f": {e.filename}" if e.filename else "") + ".", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"genphys {args.command}: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
