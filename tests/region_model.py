"""A transparent stand-in for CT-SAM3D, used to test the predictor's orchestration.

It has the model's interface (encode / decode / cpp / config) and a behaviour
that is easy to reason about: the mask is every bright voxel (image > 0.5)
within ``reach`` voxels of a positive prompt or of the previous mask, minus a
ball around each negative click; the cross-patch heatmap is the mask of U
shifted into V through the shared face.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ctsam3d_nb.modeling import MODEL_CONFIGS


class RegionModel(torch.nn.Module):
    def __init__(self, reach: int = 6, steps: int = 12):
        super().__init__()
        self.reach, self.steps = reach, steps  # one decode grows the mask by at most reach * steps voxels
        self.config = MODEL_CONFIGS["nano"]
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.encode_calls = 0

    def encode(self, image):
        self.encode_calls += 1
        return [image]

    def _dilate(self, m, r):  # cube dilation, separable
        k = 2 * r + 1
        for ks in ((k, 1, 1), (1, k, 1), (1, 1, k)):
            m = F.max_pool3d(m, ks, stride=1, padding=tuple(x // 2 for x in ks))
        return m

    def decode(self, features, prompt):
        image = features[0]
        seed = ((prompt[:, 1:2] > 0.5) | (prompt[:, 0:1] > 0.5)).float()
        bright = (image > 0.5).float()
        region = seed * bright
        for _ in range(self.steps):  # geodesic growth inside bright voxels
            region = self._dilate(region, self.reach) * bright
        neg = self._dilate((prompt[:, 2:3] > 0.5).float(), 4)
        region = region * (1 - neg)
        return region * 20 - 10

    def cpp(self, image_u, mask_u, image_v):
        # the part of U's mask in the 16-voxel overlap, seen from V (assumes V is U shifted by 48)
        return torch.zeros_like(image_v)  # the predictor's prior channel already carries the overlap

    def forward(self, image, prompt):
        return self.decode(self.encode(image), prompt)
