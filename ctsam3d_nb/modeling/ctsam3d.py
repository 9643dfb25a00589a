"""`CTSAM3D`: image encoder + PSAP/SPADE mask decoder + cross-patch prompt net."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .config import ModelConfig
from .cpp import CrossPatchPromptNet
from .image_encoder import ImageEncoder3D
from .mask_decoder import SpadeMaskDecoder

__all__ = ["CTSAM3D"]


class CTSAM3D(nn.Module):
    """Click-promptable 3D CT segmentation of 64³ patches.

    The encoder runs once per patch (:meth:`encode`); each click re-runs only
    the decoder (:meth:`decode`) on the cached features with a new PSAP prompt
    map (see :func:`~ctsam3d_nb.modeling.prompt.build_prompt_map`).

    Images are ``(B, 1, D, H, W)`` float32 with intensities in [0, 1] (CT
    clipped to [-125, 225] HU and rescaled), spatial axes ``(z, y, x)``;
    ``D = H = W = config.patch_size``.

    Attributes:
        config: the :class:`~ctsam3d_nb.modeling.config.ModelConfig` it was built from.
        image_encoder, mask_decoder, cpp_net: the three parts.
    """

    def __init__(self, config: ModelConfig, image_encoder: ImageEncoder3D,
                 mask_decoder: SpadeMaskDecoder, cpp_net: CrossPatchPromptNet) -> None:
        super().__init__()
        self.config = config
        self.image_encoder = image_encoder
        self.mask_decoder = mask_decoder
        self.cpp_net = cpp_net

    def _check_volume(self, x: torch.Tensor, name: str, channels: int) -> None:
        p = self.config.patch_size
        if x.dim() != 5 or x.shape[1] != channels or tuple(x.shape[2:]) != (p, p, p):
            raise ValueError(
                f"{name} must be (B, {channels}, {p}, {p}, {p}), got {tuple(x.shape)}; "
                "crop or pad patches to config.patch_size"
            )

    def encode(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Image features for :meth:`decode`; run once per patch and cache.

        Args:
            image: ``(B, 1, P, P, P)``, intensities in [0, 1].

        Returns:
            The encoder's four maps, finest first (``P/4 ... P/32``), followed by
            ``image`` itself when ``config.decoder_image_skip`` (the decoder
            concatenates it at full resolution). Treat the list as opaque.
        """
        self._check_volume(image, "image", 1)
        feats = self.image_encoder(image)
        if self.config.decoder_image_skip:
            feats.append(image)
        return feats

    def decode(self, features: Sequence[torch.Tensor], prompt_map: torch.Tensor) -> torch.Tensor:
        """Mask logits for one click state.

        Args:
            features: the output of :meth:`encode` (batch B).
            prompt_map: ``(B, 3, P, P, P)`` ``[previous mask prob, positive, negative]``.

        Returns:
            ``(B, 1, P, P, P)`` logits; ``sigmoid`` gives the mask probability.
        """
        self._check_volume(prompt_map, "prompt_map", 3)
        return self.mask_decoder(features, prompt_map)

    def forward(self, image: torch.Tensor, prompt_map: torch.Tensor) -> torch.Tensor:
        """``decode(encode(image), prompt_map)``: ``(B,1,P,P,P), (B,3,P,P,P) -> (B,1,P,P,P)`` logits."""
        return self.decode(self.encode(image), prompt_map)

    def cpp(self, image_u: torch.Tensor, mask_u: torch.Tensor, image_v: torch.Tensor) -> torch.Tensor:
        """Cross-patch heatmap in V from the prediction in the neighbouring patch U.

        Args:
            image_u: ``(B, 1, P, P, P)`` image of patch U.
            mask_u: ``(B, 1, P, P, P)`` U's predicted mask probability; detached
                here so CPP training does not push gradients into the decoder.
            image_v: ``(B, 1, P, P, P)`` image of the neighbouring patch V.

        Returns:
            ``(B, 1, P, P, P)`` regressed heatmap in V (target: Gaussian, peak 1,
            see :func:`~ctsam3d_nb.modeling.cpp.cpp_target_heatmap`).
        """
        for name, t in (("image_u", image_u), ("mask_u", mask_u), ("image_v", image_v)):
            self._check_volume(t, name, 1)
        return self.cpp_net(torch.cat([image_u, mask_u.detach().to(image_u.dtype), image_v], 1))
