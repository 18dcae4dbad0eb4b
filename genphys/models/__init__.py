"""Models shipped inside the package, so ``genphys generate "..."`` works with no download.

Each model is a pipeline folder (``SimulationPipeline.save_pretrained``: ``pipeline.json``,
``backbone/`` with fp16 safetensors weights, ``text_encoder.json`` naming the packaged
MiniLM) plus a model card ``README.md`` with its data recipe, training and measured metrics.
``genphys.models.package`` turns a ``genphys train`` export into such a folder.
"""

from __future__ import annotations

from pathlib import Path

from genphys.errors import UserInputError

DEFAULT_MODEL = "burgers1d"  # what `genphys generate` / `genphys rollout` use without --model
SHIPPED = ("burgers1d",)


def shipped_model_path(name: str = DEFAULT_MODEL) -> Path:
    """Folder of the shipped model ``name`` inside the installed package."""
    if name not in SHIPPED:
        raise UserInputError(f"shipped model {name!r} does not exist; available: "
                             f"{', '.join(SHIPPED)}.")
    path = Path(__file__).resolve().parent / name
    if not (path / "pipeline.json").is_file():
        raise UserInputError(f"the shipped model {name!r} is missing from this installation "
                             f"({path}); reinstall genphys or pass --model with a model folder.")
    return path


def resolve_model(model: str | None) -> Path:
    """``--model`` as given, or the shipped default when it is omitted."""
    return shipped_model_path() if model in (None, "", "default") else Path(model)
