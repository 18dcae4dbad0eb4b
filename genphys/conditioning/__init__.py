"""Conditioning encoders: text (transformers) with an on-disk caption cache, field conditions
(known frames, sparse observations) and PDE parameter vectors, and their wavelet model space."""

from genphys.conditioning.cache import CaptionCache, caption_key
from genphys.conditioning.fields import (
    first_frames,
    param_transform,
    params_vector,
    random_observation_mask,
    sparse_observations,
    to_model_space,
)
from genphys.conditioning.text import (
    TextEmbedding,
    TextEncoder,
    TextEncoderConfig,
    default_model_path,
    mean_pool,
)

__all__ = ["CaptionCache", "caption_key", "first_frames", "param_transform", "params_vector",
           "random_observation_mask", "sparse_observations", "to_model_space", "TextEmbedding",
           "TextEncoder", "TextEncoderConfig", "default_model_path", "mean_pool"]
