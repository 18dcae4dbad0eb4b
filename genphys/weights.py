"""Copying saved weights into a model (``train.init_from`` of every training mode)."""

from __future__ import annotations

import os

import torch
from torch import nn

from genphys.errors import UserInputError


def copy_matching_state(model: nn.Module, state: dict[str, torch.Tensor],
                        folder: str | os.PathLike, what: str, advice: str) -> None:
    """Load ``state`` into ``model`` if it has exactly the same tensor names and shapes
    (any float dtype, cast to the model's); else one sentence naming ``train.init_from``."""
    own = model.state_dict()
    bad = sorted(set(own) ^ set(state)) + [k for k in own if k in state and
                                            own[k].shape != state[k].shape]
    if bad:
        raise UserInputError(f"train.init_from={str(folder)!r} does not fit this {what} "
                             f"(first mismatching tensors: {bad[:3]}); {advice}.")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
