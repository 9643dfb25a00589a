"""First-click Dice per structure on training-distribution patches: what the model still gets wrong.

Draws structure samples as the long runs' recipe does (`PRESETS["cpu-long"]`, single structures at 1.5 mm, no
priors, lesions, unions or slabs; sampler rank 777, a stream no run trains on), clicks each at its deepest point
and scores the decoded 64³ patch. The per-structure means are what `TrainConfig.hard_targets` weights by
(training/difficulty.py keeps the same measure, as a running mean, during training)::

    python benchmarks/patch_dice_by_structure.py --model nano --samples 600 \\
        --out docs/eval_session12/train_patch_dice_shipped.csv
"""
from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import pandas as pd
import torch

from ctsam3d_nb import load_model
from ctsam3d_nb.anatomy import by_id
from ctsam3d_nb.clicks import first_click
from ctsam3d_nb.modeling.prompt import build_prompt_maps
from ctsam3d_nb.training.config import PRESETS, TrainConfig
from ctsam3d_nb.training.data import PatchSampler
from ctsam3d_nb.training.loop import _sources

SINGLE = dict(p_multiscale=0, p_refine_prior=0, p_leak_prior=0, p_lesion=0, p_subpart=0, p_union=0, p_slab=0,
              p_contents=0, p_cpp=0, refresh_every=48)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="nano", help="shipped name or checkpoint path")
    ap.add_argument("--samples", type=int, default=600)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True, help="CSV of every sample (label, dice, voxels)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_model(args.model).eval()
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in {**PRESETS["cpu-long"], **SINGLE}.items() if k in fields})
    sampler = PatchSampler.from_config(cfg, _sources(cfg), rank=777)
    rows = []
    for i in range(args.samples):
        s = sampler.sample(i)
        point = first_click(s.target, rng=np.random.default_rng(i))
        with torch.no_grad():
            feats = model.encode(torch.from_numpy(s.image)[None, None])
            prompt = build_prompt_maps(torch.zeros((1,) + s.target.shape), [np.asarray([point], float)],
                                       [np.asarray([1])], size=s.target.shape, sigma=model.config.sigma,
                                       radius=model.config.click_radius, device="cpu")
            pred = torch.sigmoid(model.decode(feats, prompt))[0, 0].numpy() > 0.5
        dice = 2 * np.count_nonzero(pred & s.target) / (pred.sum() + s.target.sum())
        rows.append(dict(label=by_id(s.label).name, dice=dice, voxels=int(s.target.sum()), pred=int(pred.sum())))
    df = pd.DataFrame(rows)
    df.to_csv(args.out, index=False)
    table = df.groupby("label").agg(n=("dice", "size"), dice=("dice", "mean")).sort_values("dice")
    print(f"{len(df)} samples, mean first-click patch Dice {df.dice.mean():.3f}")
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()
