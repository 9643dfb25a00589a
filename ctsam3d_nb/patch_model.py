"""The model side of a :class:`~ctsam3d_nb.predictor.Predictor`: a ``CTSAM3D`` on one device, run on
64³ patches of one image, with the encoder features cached.

    net = PatchModel(model, device="auto")           # pred.net
    net.set_image(image, levels=(2, 4))              # the CT on the model grid, float32 in [0, 1]
    prob = net.decode(origin, prompt, factor=2)      # float16 probabilities of one patch
    probs = net.decode_many([(factor, origin, prompt), ...])
    heat = net.cpp(u, prob_u, v)                     # the cross-patch heatmap of neighbour v

Encoder features are kept per patch (level factor and origin); a decode of a kept patch only
re-runs the decoder. ``stats`` counts the encoder, decoder and cross-patch net calls.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch

from . import cpu_features
from . import patches as P
from .grid import downsample
from .settings import is_whole

__all__ = ["PatchModel", "resolve_device"]


def resolve_device(device) -> torch.device:
    """``"auto"`` or None: CUDA if available, else CPU; anything else as ``torch.device`` reads it.

    Raises:
        ValueError: not a device, or CUDA asked for where torch has none (named, with the fix).
    """
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device={device!r} is not a device: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r}, but torch finds no CUDA GPU here; use device='cpu' (or 'auto')")
    return dev


class PatchModel:
    """A model on one device, run on 64³ patches of the image of :meth:`set_image`.

    Args:
        model: a ``CTSAM3D`` (moved to ``device``, in eval mode).
        device: "auto" (CUDA if available, else CPU), "cpu", "cuda", or a torch.device.
        cache_patches: encoder features kept (least recently used are dropped).
        precision: "auto" (bfloat16 autocast on CUDA, float32 on CPU), "bf16" or "fp32" (`ClickSettings.precision`).
    """

    def __init__(self, model, device="auto", cache_patches: int = 64, precision: str = "auto"):
        self.device = resolve_device(device)
        if precision == "bf16" and self.device.type == "cpu" and not cpu_features.cpu_has_native_bf16():
            raise ValueError(
                "precision = 'bf16' on a CPU without bfloat16 hardware (no AVX512-BF16 or AMX): PyTorch emulates "
                "bfloat16 there, and a decode takes about 190 times as long as in float32 (nano's decoder: 23 s "
                "instead of 0.12 s on a 2-core AVX2 CPU, docs/benchmarks.md). Use precision='auto' (float32 on "
                "this CPU) or 'fp32'; to replay a bf16 session here, Predictor.replay(session, ct, "
                "precision='fp32') (its masks then differ slightly from the recorded ones).")
        self.precision = precision
        self.model = model.to(self.device).eval()
        if not is_whole(cache_patches) or cache_patches < 1:
            raise ValueError(f"cache_patches must be a whole number >= 1 (patches whose encoder features are kept; "
                             f"default 64), got {cache_patches!r}")
        self.cache_patches = int(cache_patches)
        self.stats = {"encoder_calls": 0, "decoder_calls": 0, "cpp_calls": 0}
        self._images: dict[int, np.ndarray] = {}
        self._features: OrderedDict = OrderedDict()  # (factor, origin) -> encoder features, oldest use first

    # ------------------------------------------------------------------ image and feature cache
    def set_image(self, image: np.ndarray, levels=()) -> None:
        """Run on ``image`` (finest level) from now on; the coarser ``levels`` (factors) are made now,
        so that no click waits for them. Features of the previous image are dropped."""
        self._images = {1: image}
        for f in levels:
            self.image(f)
        self.clear_cache()

    def image(self, factor: int = 1) -> np.ndarray:
        """The image on level ``factor`` (downsampled on first use)."""
        if factor not in self._images:
            self._images[factor] = downsample(self._images[1], factor)
        return self._images[factor]

    def clear_cache(self) -> None:
        self._features.clear()

    def cached_origins(self, factor: int = 1) -> list:
        """Origins of the level-``factor`` patches whose features are kept, least recently used first."""
        return [o for f, o in self._features if f == factor]

    def cache_state(self):
        """The feature cache as it is (a shallow copy): ``restore_cache`` puts it back after a failed click, so
        that which patches a later click reuses (and so its mask) is the same as on a replay of the session."""
        return self._features.copy()

    def restore_cache(self, state) -> None:
        self._features = state

    def _cache_put(self, key, feats) -> None:
        """Keep ``feats`` as the most recently used; drop the least recently used beyond ``cache_patches``."""
        self._features[key] = feats
        self._features.move_to_end(key)
        while len(self._features) > self.cache_patches:
            self._features.popitem(last=False)

    # ------------------------------------------------------------------ model calls
    def _patch_tensor(self, arr: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))[None, None].to(self.device)

    def _autocast(self):
        bf16 = self.precision == "bf16" or (self.precision == "auto" and self.device.type == "cuda")
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16)

    def encode(self, origin, factor: int = 1):
        """The encoder features of the patch at ``origin`` on level ``factor`` (kept ones are reused)."""
        key = (factor, tuple(origin))
        feats = self._features.get(key)
        if feats is not None:
            self._features.move_to_end(key)
            return feats
        with torch.inference_mode(), self._autocast():
            feats = self.model.encode(self._patch_tensor(P.crop(self.image(factor), origin)))
        self.stats["encoder_calls"] += 1
        self._cache_put(key, feats)
        return feats

    def decode(self, origin, prompt: torch.Tensor, factor: int = 1) -> np.ndarray:
        """The probabilities (float16, 64³) of the patch at ``origin`` on level ``factor`` for ``prompt``."""
        feats = self.encode(origin, factor)
        with torch.inference_mode(), self._autocast():
            logits = self.model.decode(feats, prompt[None].to(self.device))
        self.stats["decoder_calls"] += 1
        return torch.sigmoid(logits.float())[0, 0].cpu().numpy().astype(np.float16)

    def decode_many(self, items, batched: bool | None = None) -> list[np.ndarray]:
        """Decode ``[(factor, origin, prompt)]``; returns their probabilities in order.

        ``batched`` (default: on CUDA only) runs them as one batch (patches not yet encoded are encoded
        in one batch too). On the 2-core CPU one batch of 8 patches took 1.2x as long as one at a time
        (docs/benchmarks.md), so the CPU decodes them one by one."""
        if batched is None:
            batched = self.device.type == "cuda"
        if len(items) == 1 or not batched:
            return [self.decode(o, pr, f) for f, o, pr in items]
        keys = [(f, tuple(o)) for f, o, _ in items]
        missing = list(dict.fromkeys(k for k in keys if k not in self._features))
        new = {}
        if missing:
            batch = torch.cat([self._patch_tensor(P.crop(self.image(f), o)) for f, o in missing])
            with torch.inference_mode(), self._autocast():
                feats = self.model.encode(batch)
            self.stats["encoder_calls"] += len(missing)
            new = {key: [t[i:i + 1] for t in feats] for i, key in enumerate(missing)}
        feats = [new[k] if k in new else self._features[k] for k in keys]
        for key, kept in zip(keys, feats):  # in item order: the last item is the most recently used
            self._cache_put(key, kept)
        stacked = [torch.cat(level) for level in zip(*feats)]
        prompts = torch.stack([pr for _, _, pr in items]).to(self.device)
        with torch.inference_mode(), self._autocast():
            logits = self.model.decode(stacked, prompts)
        self.stats["decoder_calls"] += len(items)
        probs = torch.sigmoid(logits.float())[:, 0].cpu().numpy().astype(np.float16)
        return list(probs)

    def cpp(self, u, prob_u: np.ndarray, v) -> torch.Tensor:
        """The cross-patch net's heatmap (float32 in [0, 1], 64³, on the CPU) of where ``prob_u``, the mask
        of the finest-level patch at ``u``, continues into the neighbouring patch at ``v``."""
        with torch.inference_mode(), self._autocast():
            heat = self.model.cpp(self._patch_tensor(P.crop(self.image(), u)), self._patch_tensor(prob_u),
                                  self._patch_tensor(P.crop(self.image(), v)))
        heat = heat.float().clamp(0, 1)[0, 0].cpu()
        self.stats["cpp_calls"] += 1
        return heat
