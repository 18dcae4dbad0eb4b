"""Turn a ``genphys train`` export into a shipped pipeline folder with fp16 weights.

``python -m genphys.models.package EXPORT OUT [--card CARD.md]`` loads the export as a
:class:`~genphys.pipelines.TextToSimulationPipeline`, stores the backbone in float16 (half the
size; the loader computes in float32), and copies a model card to ``OUT/README.md``. The
folder is self-contained: the grid, normalization and conditioning live in ``pipeline.json``.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch


def package(export: str | Path, out: str | Path, card: str | Path | None = None,
            sigma_min: float | None = None) -> Path:
    """Write the pipeline folder ``out`` from ``export`` (fp16 weights) and its model card.

    ``sigma_min`` replaces the smallest noise level of the default sampling grid (the last
    step then jumps from it to the denoised estimate); choose it on validation data.
    """
    import dataclasses

    from genphys.pipelines import TextToSimulationPipeline
    from genphys.train.checkpoint import atomic_dir

    pipe = TextToSimulationPipeline.from_pretrained(export)
    if sigma_min is not None:
        spec = dataclasses.replace(pipe.spec, objective={**pipe.spec.objective,
                                                         "sigma_min": float(sigma_min)})
        pipe = TextToSimulationPipeline(backbone=pipe.backbone, spec=spec,
                                        text_encoder=pipe.text_encoder)
    pipe.backbone.to(torch.float16)
    with atomic_dir(out) as tmp:
        pipe.save_pretrained(tmp)
        if card is not None:
            shutil.copyfile(card, Path(tmp) / "README.md")
    return Path(out)


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("export", help="`genphys train` export folder")
    ap.add_argument("out", help="pipeline folder to write (replaced atomically)")
    ap.add_argument("--card", default=None, help="model card markdown to copy as README.md")
    ap.add_argument("--sigma-min", type=float, default=None,
                    help="smallest noise level of the default sampling grid")
    args = ap.parse_args(argv)
    path = package(args.export, args.out, args.card, args.sigma_min)
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    print(f"wrote {path} ({size / 2**20:.2f} MiB)")


if __name__ == "__main__":
    main()
