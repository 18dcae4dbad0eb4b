"""``genphys rollout``: an initial field from a file -> a long trajectory ensemble."""

from __future__ import annotations

import argparse

from genphys.commands.generate import add_model_options, finish, output_defaults, parse_params


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Attach ``genphys rollout`` to the top-level parser."""
    p = sub.add_parser("rollout", help="roll a model out past its window from an initial field",
                       description="Chain windows of a first-frame-conditioned model, each "
                       "starting from the last frames of the previous one, for an ensemble.")
    p.add_argument("--init", required=True, metavar="FILE[:INDEX]",
                   help="trajectory file (and index) whose frame 0 starts the rollout")
    p.add_argument("--horizon", type=int, required=True, help="frames in the output")
    p.add_argument("--overlap", type=int, default=1, help="frames shared by windows")
    p.add_argument("--ensemble", type=int, default=1, help="ensemble members")
    p.add_argument("--prompt", default=None, help="optional text prompt")
    add_model_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Roll out, print the ensemble spread, and write/plot/check the members."""
    import numpy as np

    from genphys.models import resolve_model
    from genphys.pipelines import RolloutPipeline
    from genphys.pipelines.io import load_initial_state

    output_defaults(args, "rollout")
    args.model = str(resolve_model(args.model))
    state, file_params = load_initial_state(args.init)
    pipe = RolloutPipeline.from_pretrained(args.model)
    params = {**file_params, **parse_params(args.params)}
    params = {k: v for k, v in params.items() if k in pipe.spec.param_names} or None
    out = pipe(state, args.horizon, overlap=args.overlap, ensemble_size=args.ensemble,
               num_inference_steps=args.steps, sampler=args.sampler,
               guidance_scale=args.guidance, generator=args.seed, prompt=args.prompt,
               params=params, conserve=args.conserve)
    traj = out.trajectories[0]  # (E, C, H, *space)
    print(f"rolled out {len(out.windows)} windows to {args.horizon} frames, "
          f"{args.ensemble} members; mean ensemble std {float(out.std.mean()):.4g}")
    names = pipe.spec.param_names
    values = {n: np.full(len(traj), (params or {}).get(n, np.nan)) for n in names}
    attrs = {"generated_by": "genphys rollout", "model": str(args.model), "init": args.init,
             "overlap": args.overlap, "sampler": args.sampler, "steps": args.steps,
             "conserve": bool(pipe.conserved_channels(args.conserve))}
    seeds = [args.seed + m for m in range(len(traj))]
    caption = args.prompt or f"rollout from {args.init}"
    finish(args, pipe.spec, traj, values, [caption] * len(traj), seeds, attrs)
    return 0
