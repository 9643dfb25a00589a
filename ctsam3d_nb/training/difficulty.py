"""Difficulty-aware target sampling: structures the model still gets wrong are drawn more often.

The training step measures each structure sample's first-round Dice (one click at the target's deepest point);
`TargetDifficulty` keeps a running mean of the error ``1 - Dice`` per ontology id in a shared-memory tensor, and the
`~ctsam3d_nb.training.data.PatchSampler` (in this process or in a data worker) multiplies each structure's sampling
weight by ``(error / mean error) ** power``, clipped to ``[1 / max_factor, max_factor]``. Measured on the shipped
weights (session 12), the first-click patch Dice of training samples ranges from about 0.4 (pancreas, iliac vessels,
esophagus) to 0.84 (lungs, bladder): uniform sampling spends most steps on what the model already does well.

Structures not yet measured keep their weight (factor 1). Each process keeps its own table from its own samples
(under torchrun every rank measures and samples apart; no synchronisation is needed for a sampling weight). The
table travels in ``last.pt``, so a resumed run continues with it. With ``power > 0`` the data stream depends on the
model's results and so is no longer a pure function of the step (a run without data workers resumes with the same
table, not the same samples).
"""
from __future__ import annotations

import numpy as np
import torch

N_IDS = 256  # ontology ids are below this (anatomy: 1-137)
NEVER_BOOSTED = (118,)  # "body" in a phantom is what no other label holds: no shape to learn, its error means nothing


class TargetDifficulty:
    """Running first-click error per structure id, readable from data worker processes.

    Args:
        power: exponent of the relative error in the sampling factor (0 = every factor is 1).
        max_factor: the factor is clipped to ``[1 / max_factor, max_factor]``.
        decay: weight of the past in the running mean once a structure has ``1 / (1 - decay)`` samples
            (before that the plain mean of its samples).
    """

    def __init__(self, power: float, max_factor: float = 4.0, decay: float = 0.98):
        if not (power >= 0 and max_factor >= 1 and 0 <= decay < 1):
            raise ValueError(f"TargetDifficulty(power={power}, max_factor={max_factor}, decay={decay}): need "
                             "power >= 0, max_factor >= 1 and 0 <= decay < 1")
        self.power, self.max_factor, self.decay = float(power), float(max_factor), float(decay)
        # shared before the DataLoader forks its workers: they read what the training step writes
        self.table = torch.zeros(2, N_IDS, dtype=torch.float64).share_memory_()  # [error, count]

    def update(self, labels, dices) -> None:
        """Fold in the first-round Dice of structure samples (``labels``: their ontology ids)."""
        err, count = self.table[0], self.table[1]
        for label, d in zip(labels, dices):
            i = int(label)
            if not 0 < i < N_IDS or not np.isfinite(d):
                continue
            count[i] += 1
            rate = max(1.0 / float(count[i]), 1.0 - self.decay)
            err[i] += rate * ((1.0 - float(d)) - err[i])

    def factors(self, ids) -> np.ndarray:
        """Sampling-weight factors for the ontology ids ``ids`` (1 for those not measured yet)."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.ones(len(ids))
        if self.power == 0:
            return out
        err, count = self.table[0].numpy(), self.table[1].numpy()
        seen = count > 0
        if not seen.any():
            return out
        mean = max(float(err[seen].mean()), 1e-3)
        known = (ids > 0) & (ids < N_IDS)
        known[known] &= seen[ids[known]]
        rel = np.maximum(err[ids[known]], 1e-3) / mean
        out[known] = np.clip(rel ** self.power, 1.0 / self.max_factor, self.max_factor)
        residual = np.isin(ids, NEVER_BOOSTED)
        out[residual] = np.minimum(out[residual], 1.0)
        return out

    def state_dict(self) -> dict:
        return {"table": self.table.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.table.copy_(state["table"].to(self.table.dtype))
