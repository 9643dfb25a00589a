"""CT-SAM3D model: encoder, PSAP prompts, SPADE decoder, cross-patch prompt net."""
from .build import MODEL_CONFIGS, ModelConfig, build_model
from .common import Conv3d, UpConv3d, conv3d, fast_conv
from .cpp import CrossPatchPromptNet, cpp_target_heatmap, heatmap_to_clicks
from .ctsam3d import CTSAM3D
from .image_encoder import ImageEncoder3D
from .mask_decoder import SpadeMaskDecoder, SpadeResBlock, SpadeStem, spade_modulate
from .prompt import (
    build_prompt_map,
    build_prompt_maps,
    click_gaussians,
    draw_gaussian_,
    gaussian_kernel,
    prompt_pyramid,
)

__all__ = [
    "CTSAM3D",
    "MODEL_CONFIGS",
    "ModelConfig",
    "build_model",
    "ImageEncoder3D",
    "SpadeMaskDecoder",
    "SpadeResBlock",
    "SpadeStem",
    "spade_modulate",
    "CrossPatchPromptNet",
    "cpp_target_heatmap",
    "heatmap_to_clicks",
    "click_gaussians",
    "build_prompt_map",
    "build_prompt_maps",
    "draw_gaussian_",
    "gaussian_kernel",
    "prompt_pyramid",
    "Conv3d",
    "UpConv3d",
    "conv3d",
    "fast_conv",
]
