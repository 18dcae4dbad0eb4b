"""``genphys train CONFIG [--set ...] [--resume DIR]``: train a model from a YAML experiment.

Single process as is; the same command under ``accelerate launch --multi_gpu
--num_processes N -m genphys train ...`` or ``torchrun`` runs DDP (see docs/training.md).
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Attach ``genphys train`` to the top-level parser."""
    p = sub.add_parser(
        "train",
        help="train a diffusion/flow model from a YAML experiment config",
        description="Train a model on trajectories with accelerate: checkpoints, exact "
        "resume, EMA export (save_pretrained). Runs DDP when started by accelerate launch "
        "or torchrun.",
    )
    p.add_argument("config", help="experiment YAML (see configs/ and docs/training.md)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="SECTION.KEY=VALUE",
                   help="override a config value, e.g. train.steps=200; repeatable")
    p.add_argument("--resume", default=None, metavar="DIR",
                   help="continue from a checkpoint folder or a run folder (newest checkpoint)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the config, train, and print where the checkpoint and export went."""
    from genphys.config import load_config
    from genphys.train import ExperimentConfig, Trainer
    from genphys.train.runtime import tune_allocator

    tune_allocator()  # keep freed activation buffers in the process (GENPHYS_TUNE_MALLOC=0: off)
    overrides = list(args.overrides) + (["logging.progress=false"] if args.no_progress else [])
    cfg = load_config(ExperimentConfig, args.config, overrides)
    trainer = Trainer(cfg, resume=args.resume)
    result = trainer.fit()
    if not trainer.acc.is_main_process:
        return 130 if result["interrupted"] else 0
    if result["interrupted"]:
        print(f"interrupted at step {result['step']}; checkpoint saved to {result['checkpoint']}"
              f" (continue with --resume {cfg.checkpoint.output_dir}).")
        return 130
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in result.items() if k.startswith("val/"))
    print(f"trained {result['step']} steps ({metrics}); checkpoint {result['checkpoint']}; "
          f"export {result['export']}")
    return 0
