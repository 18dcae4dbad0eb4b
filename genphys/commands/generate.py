"""``genphys generate``: text (and/or an initial field) -> trajectories in an HDF5 file."""

from __future__ import annotations

import argparse

from genphys.errors import UserInputError


def add_model_options(p: argparse.ArgumentParser) -> None:
    """Options shared by ``generate`` and ``rollout``: model, sampler, seeds, output."""
    p.add_argument("--model", default=None,
                   help="pipeline folder or `genphys train` export (default: the shipped "
                   "burgers1d model, genphys/models/burgers1d)")
    p.add_argument("--steps", type=int, default=10, help="sampler steps (default 10)")
    p.add_argument("--sampler", default="dpmpp_2m", help="samplers.SAMPLERS name")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale")
    p.add_argument("--seed", type=int, default=0, help="sample i uses seed + i")
    p.add_argument("--param", dest="params", action="append", default=[], metavar="NAME=VALUE",
                   help="PDE parameter (e.g. nu=0.01); repeatable")
    p.add_argument("--out", default=None,
                   help="output HDF5 file (data engine schema; default sim.h5, replaced)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--plot", default=None, help="PNG of the first trajectory (default: the "
                   "--out name with .png)")
    p.add_argument("--gif", default=None, type=_gif_path,
                   help="animated GIF of the trajectory (1D: ensemble mean +- std if several)")
    p.add_argument("--conserve", action=argparse.BooleanOptionalAction, default=None,
                   help="hold the spatial mean the PDE conserves (burgers1d: the mean of u) "
                   "constant in every sampling step (default: on when the system has one)")
    p.add_argument("--check", action=argparse.BooleanOptionalAction, default=None,
                   help="print the physical-consistency error (Burgers re-solve; default on "
                   "for burgers1d models)")


def _gif_path(value: str) -> str:
    """Check ``--gif`` before sampling: a .gif file in a writable directory."""
    from genphys.viz.animate import check_gif_path

    try:
        return str(check_gif_path(value))
    except UserInputError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Attach ``genphys generate`` to the top-level parser."""
    p = sub.add_parser("generate", help="generate trajectories from a prompt",
                       description="Sample trajectories from a trained model, conditioned on a "
                       "prompt, PDE parameters and/or an initial field, and write them in "
                       "the data engine's HDF5 schema.")
    p.add_argument("prompt", nargs="?", default=None, help="text prompt")
    p.add_argument("--num-samples", type=int, default=1, help="trajectories to generate")
    p.add_argument("--init", default=None, metavar="FILE[:INDEX]",
                   help="take the initial field (and parameters) from a trajectory file")
    add_model_options(p)
    p.set_defaults(func=run)


def parse_params(items: list[str]) -> dict[str, float]:
    """``["nu=0.01"]`` -> ``{"nu": 0.01}`` with one clear error for a malformed item."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not key.strip():
            raise UserInputError(f"--param expects NAME=NUMBER, got {item!r}.")
    return out


def output_defaults(args: argparse.Namespace, stem: str) -> None:
    """Fill ``--out`` (``stem.h5``, replaced) and ``--plot`` (beside ``--out``) if not given."""
    from pathlib import Path

    if args.out is None:
        args.out, args.overwrite = f"{stem}.h5", True
    if args.plot is None:
        args.plot = str(Path(args.out).with_suffix(".png"))


def finish(args: argparse.Namespace, spec, traj, params, captions, seeds, attrs) -> None:
    """Write ``--out``/``--plot``/``--gif``, print the ``--check`` error (shared with rollout)."""
    import tempfile
    from pathlib import Path

    from genphys.pipelines.io import consistency, to_grid_trajectories, write_output

    check = args.check if args.check is not None else spec.system == "burgers1d"
    if check:
        err, nu, inferred = consistency(spec, traj, params)
        how = "; nu inferred from the trajectory: " + ", ".join(
            f"{v:.3g}" for v in nu[inferred]) if inferred.any() else ""
        print(f"physical-consistency error (relative L2 vs a numerical re-solve from frame 0"
              f"{how}): mean {err.mean():.4g}; per sample {', '.join(f'{e:.4g}' for e in err)}")
    batch = to_grid_trajectories(spec, traj, params, captions, seeds, attrs)
    if args.out:
        print(f"wrote {write_output(args.out, batch, args.overwrite)}")
    if args.plot:
        from genphys.viz import plot_file

        with tempfile.TemporaryDirectory() as tmp:
            src = args.out or write_output(Path(tmp) / "sim.h5", batch, True)
            print(f"wrote {plot_file(src, 0, args.plot)}")
    if args.gif:
        from genphys.viz.animate import animate_batch

        print(f"wrote {animate_batch(batch, args.gif)}")


def run(args: argparse.Namespace) -> int:
    """Generate ``--num-samples`` trajectories and write/plot/check them."""
    import numpy as np

    from genphys.models import resolve_model
    from genphys.pipelines import TextToSimulationPipeline
    from genphys.pipelines.io import load_initial_state

    output_defaults(args, "sim")
    args.model = str(resolve_model(args.model))
    params, state = parse_params(args.params), None
    if args.init:
        state, file_params = load_initial_state(args.init)
        params = {**file_params, **params}
    pipe = TextToSimulationPipeline.from_pretrained(args.model)
    params = {k: v for k, v in params.items() if k in pipe.spec.param_names} or None
    out = pipe(args.prompt, num_inference_steps=args.steps, sampler=args.sampler,
               guidance_scale=args.guidance, num_samples=args.num_samples,
               generator=args.seed, params=params, initial_state=state,
               conserve=args.conserve)
    b = out.trajectories.shape[0]
    print(f"generated {b} trajectories of shape {tuple(out.trajectories.shape[1:])} "
          f"(C, T, *space) with {args.sampler}, {args.steps} steps")
    for name, v in out.params.items():
        print(f"  {name}: {', '.join(f'{x:.4g}' for x in np.asarray(v))}")
    captions = out.prompts or [args.prompt or "generated from an initial field"] * b
    attrs = {"generated_by": "genphys generate", "model": str(args.model),
             "sampler": args.sampler, "steps": args.steps, "guidance": args.guidance,
             "conserve": bool(pipe.conserved_channels(args.conserve))}
    finish(args, pipe.spec, out.trajectories, out.params, captions, out.seeds, attrs)
    return 0
