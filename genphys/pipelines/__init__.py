"""diffusers pipelines: text / initial field -> trajectories, and long chained rollouts.

``TextToSimulationPipeline.from_pretrained(path)`` and ``RolloutPipeline.from_pretrained(path)``
load a pipeline folder (``save_pretrained``) or a ``genphys train`` export folder.
"""

from genphys.pipelines.base import SimulationPipeline
from genphys.pipelines.rollout import RolloutOutput, RolloutPipeline
from genphys.pipelines.sampling import check_sampler, diffusers_model, run_sampler
from genphys.pipelines.spec import PipelineSpec, parse_params
from genphys.pipelines.text_to_simulation import (
    SimulationOutput,
    TextToSimulationPipeline,
    resolve_seeds,
)

__all__ = [
    "SimulationPipeline", "TextToSimulationPipeline", "RolloutPipeline", "SimulationOutput",
    "RolloutOutput", "PipelineSpec", "parse_params", "check_sampler", "diffusers_model",
    "run_sampler", "resolve_seeds",
]
