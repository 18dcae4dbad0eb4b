"""Exponential moving average of model weights, checkpointable by ``accelerator.save_state``."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class EMA:
    """EMA copy of a model: ``w_ema <- d w_ema + (1 - d) w`` with d = min(decay, (1+n)/(10+n)).

    The warm-up of the decay follows Tarvainen & Valpola (2017) / the TensorFlow
    ``ExponentialMovingAverage(num_updates=...)`` convention; before ``start`` the EMA copies
    the weights.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, start: int = 0):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.start, self.num_updates = float(decay), int(start), 0

    def current_decay(self) -> float:
        """The decay used at the next update."""
        n = self.num_updates
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Blend the (unwrapped) ``model`` into the EMA; copy it before ``start``."""
        src = dict(model.named_parameters())
        if step < self.start:
            for name, p in self.model.named_parameters():
                p.copy_(src[name].detach())
            return
        d = self.current_decay()
        for name, p in self.model.named_parameters():
            p.lerp_(src[name].detach().to(p.dtype), 1.0 - d)
        for name, b in model.named_buffers():
            self.model.get_buffer(name).copy_(b)
        self.num_updates += 1

    def state_dict(self) -> dict[str, Any]:
        """Weights and the update counter (registered for checkpointing)."""
        return {"model": self.model.state_dict(), "num_updates": self.num_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        self.model.load_state_dict(state["model"])
        self.num_updates = int(state["num_updates"])
