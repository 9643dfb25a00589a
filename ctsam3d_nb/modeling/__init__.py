"""CT-SAM3D model: encoder, PSAP prompts, SPADE decoder, cross-patch prompt net.

This namespace holds the model, its builders and the prompt functions training and notebooks
use; the building blocks (``common.conv3d``, ``prompt.draw_gaussian_``, ``mask_decoder.SpadeStem``,
...) are reached through their modules.
"""
from .build import MODEL_CONFIGS, build_model
from .common import fast_conv
from .config import ModelConfig
from .cpp import CrossPatchPromptNet, cpp_target_heatmap, heatmap_to_clicks
from .ctsam3d import CTSAM3D
from .image_encoder import ImageEncoder3D
from .mask_decoder import SpadeMaskDecoder
from .prompt import build_prompt_map, prompt_pyramid

__all__ = [
    "CTSAM3D",
    "MODEL_CONFIGS",
    "ModelConfig",
    "build_model",
    "ImageEncoder3D",
    "SpadeMaskDecoder",
    "CrossPatchPromptNet",
    "build_prompt_map",
    "prompt_pyramid",
    "cpp_target_heatmap",
    "heatmap_to_clicks",
    "fast_conv",  # oneDNN routing of CPU convolutions on/off (benchmarks)
]
