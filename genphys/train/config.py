"""Typed sections of a training experiment (frozen dataclasses loaded by ``genphys.config``).

An experiment YAML has one mapping per section (``data``, ``model``, ``objective``,
``representation``, ``optimizer``, ``schedule``, ``ema``, ``logging``, ``checkpoint``,
``validation``, ``train``, ``reflow``); every key is documented in docs/training.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from genphys.diffusion import ObjectiveConfig
from genphys.errors import UserInputError


def _positive(value: float, name: str) -> None:
    if not value > 0:
        raise UserInputError(f"{name}={value!r} is invalid; allowed: a positive number.")


@dataclass(frozen=True)
class DataConfig:
    """Where the trajectories come from and which conditions the model is fed."""

    path: str = ""  # HDF5 trajectory file written by `genphys data` (Well schema)
    fields: tuple[str, ...] | None = None  # field names to model (None: all of the file)
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)  # seed-hash train/val/test
    batch_size: int = 8  # trajectories per process per micro-step
    num_workers: int = 0  # DataLoader worker processes (the HDF5 file opens lazily per worker)
    frames: int | None = None  # keep the first `frames` stored frames (None: all)
    frame_offset: Literal["first", "random"] = "first"  # training windows start at frame 0,
    # or at a random frame per sample (rollout training on longer trajectories; needs frames)
    time_stride: int = 1  # keep every n-th frame
    space_stride: int = 1  # keep every n-th grid point along each spatial axis
    condition: Literal["none", "first_frame"] = "none"  # field conditioning via cond slot
    params: bool = False  # feed the PDE parameters through the params slot
    param_transform: Literal["none", "log10"] = "none"  # log10: positive params (viscosity)
    text: Literal["none", "pooled", "tokens", "both"] = "none"  # caption slots fed to the model
    text_encoder: dict[str, Any] = field(default_factory=dict)  # TextEncoderConfig fields
    caption_cache: str | None = None  # embedding cache folder (None: <path>.captions/)
    caption_choice: Literal["epoch", "random", "first"] = "epoch"  # which caption per item

    def __post_init__(self) -> None:
        if self.text_encoder and self.text == "none":
            raise UserInputError("data.text_encoder is set but data.text='none'; choose "
                                 "data.text: pooled, tokens or both.")
        for name in ("batch_size", "time_stride", "space_stride"):
            if getattr(self, name) < 1:
                raise UserInputError(f"data.{name}={getattr(self, name)} must be >= 1.")
        if self.num_workers < 0:
            raise UserInputError(f"data.num_workers={self.num_workers} must be >= 0.")
        if self.frames is not None and self.frames < 2:
            raise UserInputError(f"data.frames={self.frames} must be >= 2 or null.")
        if self.frame_offset == "random" and self.frames is None:
            raise UserInputError("data.frame_offset='random' needs data.frames (the window "
                                 "length) smaller than the stored trajectories.")


@dataclass(frozen=True)
class ModelConfig:
    """Backbone kind and its constructor keywords (sizes of x/cond/params are filled in)."""

    kind: Literal["unet", "dit", "fno"] = "unet"  # SpaceTimeUNet, SpaceTimeDiT, SpaceTimeFNO
    kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. base_channels, channel_mult


@dataclass(frozen=True)
class RepresentationConfig:
    """The model space: packed wavelet channels of the trajectory (WDNO layout, Hu et al. 2025)."""

    wavelet: str = "haar"  # any pywt discrete wavelet name
    level: int = 1  # decomposition levels (0: the raw grid)
    axes: tuple[int, ...] | None = None  # transformed axes of (B, C, T, *space); None: all
    mode: str = "periodization"  # boundary handling: periodization, symmetric, zero


@dataclass(frozen=True)
class OptimizerConfig:
    """AdamW (Loshchilov & Hutter 2019) with gradient clipping and accumulation."""

    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    eps: float = 1e-8
    grad_clip: float | None = 1.0  # max global gradient norm (None: no clipping)
    grad_accum: int = 1  # micro-batches per optimizer step

    def __post_init__(self) -> None:
        _positive(self.lr, "optimizer.lr")
        if self.grad_accum < 1:
            raise UserInputError(f"optimizer.grad_accum={self.grad_accum} must be >= 1.")


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning rate: linear warm-up, then cosine decay to ``min_lr_ratio * lr`` (or constant)."""

    kind: Literal["cosine", "constant"] = "cosine"
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1


@dataclass(frozen=True)
class EMAConfig:
    """Exponential moving average of the weights, used for validation sampling and export."""

    decay: float = 0.999  # the EMA decay after its warm-up min(decay, (1+n)/(10+n))
    start: int = 0  # first optimizer step that updates the EMA (before: copies the weights)

    def __post_init__(self) -> None:
        if not 0.0 <= self.decay < 1.0:
            raise UserInputError(f"ema.decay={self.decay} must be in [0, 1).")


@dataclass(frozen=True)
class LoggingConfig:
    """Scalar logging through accelerate trackers and the progress bar."""

    every: int = 10  # optimizer steps between log lines
    trackers: tuple[Literal["csv", "tensorboard"], ...] = ("csv",)
    progress: bool = True  # tqdm bar with loss and it/s (main process only)


@dataclass(frozen=True)
class CheckpointConfig:
    """``accelerator.save_state`` checkpoints and the export folder."""

    output_dir: str = "runs/experiment"
    every: int = 500  # optimizer steps between checkpoints (one is always written at the end)
    keep_last: int = 2  # older checkpoints are deleted

    def __post_init__(self) -> None:
        if self.every < 1 or self.keep_last < 1:
            raise UserInputError(f"checkpoint.every={self.every} and checkpoint.keep_last="
                                 f"{self.keep_last} must both be >= 1.")


@dataclass(frozen=True)
class ValidationConfig:
    """Periodic validation: loss on the val split, relative L2 of sampled trajectories."""

    every: int = 250  # optimizer steps between validations (0: only at the end)
    loss_batches: int = 4  # val batches for the validation loss
    num_trajectories: int = 4  # val trajectories sampled for the relative L2
    sampler: str = "dpmpp_2m"  # samplers.SAMPLERS name
    steps: int = 10  # sampler steps


@dataclass(frozen=True)
class TrainLoopConfig:
    """The loop itself: mode, length, seed and precision."""

    mode: Literal["standard", "reflow", "distill", "autoencoder"] = "standard"
    steps: int = 1000  # optimizer steps
    seed: int = 0  # model init, data order and training noise
    mixed_precision: Literal["no", "bf16"] = "no"  # bf16 only on GPU; CPU always trains fp32
    init_from: str | None = None  # export/pipeline folder whose backbone weights start the run
    # wall-clock budget of the loop: stop at train.steps or after this many minutes, whichever
    # comes first; the cosine follows whichever is further along (not bit-reproducible)
    max_minutes: float | None = None

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise UserInputError(f"train.steps={self.steps} must be >= 1.")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise UserInputError(f"train.max_minutes={self.max_minutes} must be positive "
                                 "or null.")


@dataclass(frozen=True)
class ReflowConfig:
    """Reflow / distillation (Liu et al. 2022): teacher, coupling size, student's step count."""

    teacher: str | None = None  # export folder of a trained flow model
    num_pairs: int = 256  # (noise, sample) pairs generated with the teacher
    sampler: str = "rf_heun"  # teacher's sampler for the pairs
    steps: int = 20  # teacher's sampler steps
    distill_steps: int = 1  # mode "distill": the student's Euler step count (1 or 2)
    init_from_teacher: bool = True  # start the student from the teacher's weights

    def __post_init__(self) -> None:
        if self.num_pairs < 1 or self.steps < 1 or self.distill_steps not in (1, 2, 3, 4):
            raise UserInputError(f"reflow.num_pairs={self.num_pairs}, reflow.steps="
                                 f"{self.steps} must be >= 1 and reflow.distill_steps="
                                 f"{self.distill_steps} must be 1-4.")


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole training run; ``genphys.config.load_config(ExperimentConfig, path)`` reads it."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    representation: RepresentationConfig = field(default_factory=RepresentationConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    train: TrainLoopConfig = field(default_factory=TrainLoopConfig)
    reflow: ReflowConfig = field(default_factory=ReflowConfig)

    def __post_init__(self) -> None:
        if self.train.mode in ("reflow", "distill"):
            if self.objective.kind != "flow":
                raise UserInputError(f"train.mode={self.train.mode!r} needs objective.kind="
                                     f"'flow', got {self.objective.kind!r}.")
            if not self.reflow.teacher:
                raise UserInputError(f"train.mode={self.train.mode!r} needs reflow.teacher, "
                                     "the export folder of a trained flow model.")
        if not self.data.path:
            raise UserInputError("data.path is empty; give the HDF5 trajectory file to train on.")
