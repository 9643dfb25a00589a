"""Training configuration: one dataclass, a comment per field, saved next to every run."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class TrainConfig:
    model: str = "nano"  # model config name (ctsam3d_nb.modeling.MODEL_CONFIGS)
    out_dir: str = "runs/nano"  # checkpoints, metrics.jsonl and config.json go here
    steps: int = 2000  # optimisation steps in total
    batch_size: int = 2  # patches per step per process
    click_rounds: int = 3  # simulated click rounds per step (release: 5); loss averaged over rounds
    lr: float = 1e-3  # peak AdamW learning rate
    weight_decay: float = 0.01  # AdamW weight decay
    warmup_steps: int = 100  # linear warm-up from 0 to lr
    min_lr_ratio: float = 0.05  # cosine decay ends at lr * min_lr_ratio
    grad_clip: float = 5.0  # max gradient norm (release: 5), of the mask model and of the CPP net apart
    dice_weight: float = 0.8  # loss = dice_weight * soft Dice + focal_weight * focal
    focal_weight: float = 0.2
    focal_alpha: float = 0.8  # focal loss alpha (release: 0.8)
    focal_gamma: float = 2.0  # focal loss gamma (release: 2)
    cpp_weight: float = 10.0  # weight of the CPP heatmap MSE (heatmaps are mostly zero, so MSE is small)
    cpp_pos_weight: float = 0.0  # extra MSE weight on the heatmap's peak: w = 1 + cpp_pos_weight * target
    #   (0 = plain MSE as in the release, which an all-zero heatmap nearly minimises; 500 gives the peak ~20 %
    #   of the total weight, so missing it costs ~5x a faint 0.1 haze over the whole patch)
    phantom_weight: float = 1.0  # sampling weight of on-the-fly phantoms
    phantom_shape: tuple = (320, 224, 224)  # phantom grid (z, y, x) at 1.5 mm
    real_pairs: list = field(default_factory=list)  # [(ct_path, label_path)] real cases (TS v2 labels)
    real_weight: float = 0.0  # sampling weight of the real cases
    folder: str | None = None  # a folder of image/label pairs (images/ + labels/)
    folder_convention: str | None = None  # label convention of that folder (anatomy.LABEL_CONVENTIONS)
    folder_weight: float = 1.0  # its sampling weight
    dataset: str | None = None  # a dataset adapter: totalsegmentator, flare22, amos22, btcv, word (evaluation.DATASETS)
    dataset_root: str | None = None  # that dataset's folder, in its own layout
    dataset_options: dict = field(default_factory=dict)  # adapter options, e.g. {"split": "train"} (keep test held out)
    dataset_weight: float = 1.0  # its sampling weight
    p_augment: float = 0.6  # probability of scale/rotation augmentation
    p_domain_rand: float = 0.3  # probability of SynthSeg-style random intensities
    p_cpp: float = 0.5  # probability that a sample trains the CPP net too
    p_cpp_negative: float = 0.0  # share of CPP samples whose V lies across a face the target does not reach
    #   (all-zero heatmap target: teaches "no continuation", against a haze of heat in every neighbour)
    large_target_boost: float = 0.0  # structures >= large_target_ml are drawn (1 + boost) times as often
    large_target_ml: float = 150.0  # volume (mL) from which a structure counts as large
    p_multiscale: float = 0.0  # probability that a patch is cut at a coarser voxel size (zoom levels, and between)
    max_scale: float = 4.0  # coarsest voxel size of those, in units of 1.5 mm (4 = 6 mm, a 384 mm field)
    p_zoom_prior: float = 0.5  # of the coarse patches, the share that starts from the finer level's mask
    p_refine_prior: float = 0.0  # probability that a patch starts from a coarse mask of the target (refine step)
    init: str | None = None  # weights to start from when not resuming: "nano" (shipped) or a checkpoint .pt
    p_seeded: float = 0.25  # probability that round 1 starts like a CPP-grown patch (mask slab + heatmap)
    pool_size: int = 3  # volumes held in memory at once
    refresh_every: int = 48  # samples between replacing one pooled volume
    seed: int = 0  # seeds phantoms, sampling and clicks (per process: seed + rank)
    save_every: int = 200  # steps between checkpoints (always at the end too)
    log_every: int = 10  # steps between metrics lines
    threads: int = 0  # torch CPU threads (0 = leave torch's default)
    device: str = "auto"  # "auto", "cpu" or "cuda"
    resume: bool = True  # continue from out_dir/last.pt when present

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Refuse values that would train nonsense, naming the field and the fix."""
        from ..modeling import MODEL_CONFIGS

        def need(ok, name, what):
            if not ok:
                raise ValueError(f"TrainConfig.{name} = {getattr(self, name)!r}: {what}")

        need(self.model in MODEL_CONFIGS, "model", f"must be one of {', '.join(MODEL_CONFIGS)}")
        for name in ("steps", "batch_size", "click_rounds", "save_every", "log_every", "pool_size", "refresh_every"):
            v = getattr(self, name)
            need(isinstance(v, int) and not isinstance(v, bool) and v >= 1, name, "must be a whole number >= 1")
        need(isinstance(self.warmup_steps, int) and self.warmup_steps >= 0, "warmup_steps", "must be a whole number >= 0")
        need(isinstance(self.threads, int) and self.threads >= 0, "threads", "must be >= 0 (0 = torch's default)")
        for name in ("lr", "grad_clip", "max_scale"):
            v = getattr(self, name)
            need(isinstance(v, (int, float)) and v > 0 and v == v, name, "must be a number > 0")
        need(self.max_scale <= 8, "max_scale", "must be <= 8 (coarser patches hold too little of any target)")
        for name in ("weight_decay", "dice_weight", "focal_weight", "focal_gamma", "cpp_weight", "cpp_pos_weight",
                     "phantom_weight", "real_weight", "folder_weight", "dataset_weight", "large_target_boost",
                     "large_target_ml"):
            v = getattr(self, name)
            need(isinstance(v, (int, float)) and v >= 0 and v == v, name, "must be a number >= 0")
        for name in ("min_lr_ratio", "focal_alpha", "p_augment", "p_domain_rand", "p_cpp", "p_cpp_negative",
                     "p_multiscale", "p_zoom_prior", "p_refine_prior", "p_seeded"):
            v = getattr(self, name)
            need(isinstance(v, (int, float)) and 0 <= v <= 1, name, "is a probability/ratio in [0, 1]")
        need(self.dice_weight + self.focal_weight > 0, "dice_weight", "dice_weight + focal_weight must be > 0")
        need(self.device in ("auto", "cpu", "cuda") or str(self.device).startswith("cuda:"), "device",
             'must be "auto", "cpu", "cuda" or "cuda:N"')
        need(len(self.phantom_shape) == 3 and all(int(v) >= 64 for v in self.phantom_shape), "phantom_shape",
             "must be 3 sizes (z, y, x) of at least 64 voxels")

    def save(self, path):
        Path(path).write_text(json.dumps(dataclasses.asdict(self), indent=2))

    @classmethod
    def load(cls, path) -> "TrainConfig":
        d = json.loads(Path(path).read_text())
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown TrainConfig fields in {path}: {sorted(unknown)}")
        return cls(**d)
