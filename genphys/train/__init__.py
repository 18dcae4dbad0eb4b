"""Training under accelerate: typed experiment configs, a generic loop, diffusion/flow,
reflow and distillation tasks, crash-safe checkpoints, exact resume and EMA export.

See docs/training.md. ``Trainer(load_config(ExperimentConfig, "configs/burgers1d.yaml")).fit()``
is what ``genphys train`` runs.
"""

from genphys.train.config import (
    CheckpointConfig,
    DataConfig,
    EMAConfig,
    ExperimentConfig,
    LoggingConfig,
    ModelConfig,
    OptimizerConfig,
    ReflowConfig,
    RepresentationConfig,
    ScheduleConfig,
    TrainLoopConfig,
    ValidationConfig,
)
from genphys.train.ema import EMA
from genphys.train.export import load_export, write_export
from genphys.train.loop import Trainer, TrainState, lr_factor
from genphys.train.trackers import CSVTracker, read_csv_log

__all__ = [
    "ExperimentConfig", "DataConfig", "ModelConfig", "RepresentationConfig", "OptimizerConfig",
    "ScheduleConfig", "EMAConfig", "LoggingConfig", "CheckpointConfig", "ValidationConfig",
    "TrainLoopConfig", "ReflowConfig", "Trainer", "TrainState", "lr_factor", "EMA",
    "CSVTracker", "read_csv_log", "load_export", "write_export",
]
