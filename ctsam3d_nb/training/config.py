"""Training configuration: one dataclass, a comment per field, saved next to every run."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from .._atomic import atomic_write
from ..modeling import MODEL_CONFIGS


@dataclass
class TrainConfig:
    model: str = "nano"  # model config name (ctsam3d_nb.modeling.MODEL_CONFIGS)
    out_dir: str = "runs/nano"  # checkpoints, metrics.jsonl and config.json go here
    steps: int = 2000  # optimisation steps in total
    batch_size: int = 2  # patches per step per process
    click_rounds: int = 3  # simulated click rounds per step (release: 5); loss averaged over rounds
    grad_rounds: str = "all"  # "all": every round's loss is back-propagated (the release); "one": a step runs
    #   1..click_rounds rounds (uniform), the earlier ones without gradient (they only place the next click from
    #   the model's own errors), and back-propagates the last one only (RITM's iterative training, Sofiiuk et al.
    #   2022): about half the step's cost, so more patches per hour, each round still trained 1/click_rounds of the time
    first_click_depth: float = 0.5  # a target's round-1 click lands at a random voxel at least this fraction as
    #   deep as its deepest point (0.5: the deep interior, as all runs so far; lower reaches thin parts users
    #   also click, such as a vertebra's arch or a stomach's wall, 0 = anywhere inside)
    p_self_round: float = 0.0  # probability that a round after the first adds no click: the model's own next
    #   round on its previous mask, as `ClickSettings.self_rounds` runs it at inference (0 = every round clicks)
    lr: float = 1e-3  # peak AdamW learning rate
    weight_decay: float = 0.01  # AdamW weight decay
    warmup_steps: int = 100  # linear warm-up from 0 to lr
    min_lr_ratio: float = 0.05  # cosine decay ends at lr * min_lr_ratio
    grad_clip: float = 5.0  # max gradient norm (release: 5), of the mask model and of the CPP net apart
    dice_weight: float = 0.8  # loss = dice_weight * soft Dice + focal_weight * focal
    focal_weight: float = 0.2  # weight of the focal loss (see dice_weight)
    focal_alpha: float = 0.8  # focal loss alpha (release: 0.8)
    focal_gamma: float = 2.0  # focal loss gamma (release: 2)
    cpp_weight: float = 10.0  # weight of the CPP heatmap MSE (heatmaps are mostly zero, so MSE is small)
    cpp_pos_weight: float = 0.0  # extra MSE weight on the heatmap's peak: w = 1 + cpp_pos_weight * target
    #   (0 = plain MSE as in the release, which an all-zero heatmap nearly minimises; 500 gives the peak ~20 %
    #   of the total weight, so missing it costs ~5x a faint 0.1 haze over the whole patch)
    phantom_weight: float = 1.0  # sampling weight of on-the-fly phantoms
    phantom_shape: tuple = (320, 224, 224)  # phantom grid (z, y, x) at 1.5 mm
    p_arms: float = 0.0  # share of phantoms that are whole-body scans with the arms down beside the trunk
    #   (humeri, forearms: a 528-mm-wide grid, phantom/arms.py); the others have the arms out of the field
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
    hard_targets: float = 0.0  # difficulty-aware sampling: a structure is drawn (error / mean error) ** hard_targets
    #   times as often (clipped to 1/4..4), its error the running 1 - Dice of its samples' first click
    #   (training/difficulty.py); 0 = off. The data then depends on the model, so resumes are not exact
    p_multiscale: float = 0.0  # probability that a patch is cut at a coarser voxel size (zoom levels, and between)
    max_scale: float = 4.0  # coarsest voxel size of those, in units of 1.5 mm (4 = 6 mm, a 384 mm field)
    p_zoom_prior: float = 0.5  # of the coarse patches, the share that starts from the finer level's mask
    p_refine_prior: float = 0.0  # probability that a patch starts from a coarse mask of the target (refine step)
    p_leak_prior: float = 0.0  # probability that a patch starts from a mask that leaked into a neighbouring
    #   structure, the first click the negative one there (targets.leak_prior): a negative click drops the leak
    p_lesion: float = 0.0  # probability that the target is a synthetic lesion inserted into the patch (liver,
    #   kidney, lung, bone; 6-40 mm; phantom/lesions.py): "the blob under the click", which no anatomy teaches
    p_subpart: float = 0.0  # probability that the target is a sub-part of a structure: one connected piece of a
    #   structure in several pieces (the gap is the edge), or one side of a plane cut across an elongated one
    #   (vessel, bowel, muscle), taught as an edit: the mask starts whole, the first click is the negative one on
    #   the dropped part (a cut has no image edge; only the click can say where it ends). No CPP partner
    p_union: float = 0.0  # probability that the target is a union of neighbouring structures that form a whole
    #   (a vertebra and its neighbours, the ribs of one side, bony pelvis, lung lobes, aorto-/caval-iliac tree,
    #   gluteal muscles; training/targets.py UNION_GROUPS)
    p_contents: float = 0.0  # probability that the target is a structure holding something darker than its bulk
    #   (gas in a stomach or bowel loop, marrow in a humerus), the patch centred there and the first click on it
    #   (targets.contents_index, contents_in_patch): the shipped weights segment only the bubble or the marrow
    #   (docs/model_card.md, session 25). p_lesion + p_subpart + p_union + p_contents <= 1
    p_elastic: float = 0.0  # real volumes only: probability of a smooth elastic deformation of the patch (one
    #   real anatomy becomes many; phantoms are a new anatomy each and are left alone)
    elastic_mm: float = 6.0  # largest displacement of that deformation (mm); its gradient is kept <= 0.25
    p_contrast: float = 0.0  # real volumes only: probability of a contrast-phase change (one HU shift each for
    #   arteries, veins, enhancing organs) and a gamma 0.7-1.4, on top of the usual intensity augmentation
    p_slab: float = 0.0  # probability that a patch shows a scan of limited z coverage (a 20-90 mm slab through
    #   the target, padded above and below as the predictor pads a scan): partial-coverage scans are common
    real_uniform_targets: bool = False  # real volumes: every labelled structure is drawn equally often
    #   (the RARE_TARGETS down-weighting of ribs and vertebrae, meant for phantoms, would starve real vertebrae)
    init: str | None = None  # weights to start from when not resuming: "nano" (shipped) or a checkpoint .pt
    p_seeded: float = 0.25  # probability that round 1 starts like a CPP-grown patch (mask slab + heatmap)
    p_seeded_partial: float = 0.0  # share of those seeded rounds whose slab holds only part of the target there
    #   (a ball around one of its voxels, 20-90 % of them), as a grown patch carries what its neighbour found: an
    #   under-segmenting neighbour's mask, which the patch should complete, not copy (docs/model_card.md, session 26)
    p_seeded_leak: float = 0.0  # share of seeded rounds whose slab also holds a structure touching the target there
    #   (targets.neighbour_leak), as a neighbour that leaked carries its leak into a grown patch, which should drop
    #   it, not grow it (docs/model_card.md, session 27); the label stays the target
    pool_size: int = 3  # volumes held in memory at once
    refresh_every: int = 48  # samples between replacing one pooled volume
    seed: int = 0  # seeds phantoms, sampling and clicks (per process: seed + rank)
    save_every: int = 200  # steps between checkpoints (always at the end too)
    log_every: int = 10  # steps between metrics lines
    threads: int = 0  # torch CPU threads (0 = leave torch's default)
    workers: int = 0  # data worker processes cutting patches beside the training step (0 = in this process;
    #   with workers each draws its own stream, so a resumed run continues with new data, not the same)
    max_minutes: float = 0.0  # stop (checkpoint + model.pt) after this many minutes of training (0 = no limit);
    #   the learning-rate schedule then runs over this time instead of over `steps`
    save_every_s: float = 0.0  # also write last.pt every this many seconds (0 = only every save_every steps)
    device: str = "auto"  # "auto", "cpu" or "cuda"
    precision: str = "auto"  # "bf16": bfloat16 autocast (weights and optimizer stay float32); "fp32"; "auto":
    #   bf16 on CUDA and on CPUs with native bfloat16 (AVX512-BF16/AMX: 1.6x faster steps on this project's
    #   CPU, docs/benchmarks.md), else fp32 (emulated bf16 is slower there)
    ema_decay: float = 0.0  # also keep an exponential moving average of the weights, updated after every step
    #   with this decay (0 = off; 0.999 averages about the last 1000 steps). model.pt and the export hold the
    #   average: it smooths the step-to-step noise of small-batch training (evaluated checkpoints differ less)
    resume: bool = True  # continue from out_dir/last.pt when present
    overwrite: bool = False  # write into an out_dir that holds files a run did not write (e.g. your own
    allow_changes: bool = False  # resume a run with settings other than its own (a new lr, data recipe, ...): refused
    #   unless set, so that a resume that forgot --preset or a flag does not go on as another run (steps,
    #   max_minutes, devices, threads, workers and saving may always change)
    #   config.json/model.pt: they are replaced). Without it such a folder is refused. A one-time permission,
    #   never saved in config.json, so `--config old/config.json` cannot carry it to another folder.

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Refuse values that would train nonsense, naming the field and the fix."""
        def need(ok, name, what):
            if not ok:
                raise ValueError(f"TrainConfig.{name} = {getattr(self, name)!r}: {what}")

        need(self.model in MODEL_CONFIGS, "model", f"must be one of {', '.join(MODEL_CONFIGS)}")
        for name in ("resume", "overwrite", "real_uniform_targets"):
            need(isinstance(getattr(self, name), bool), name, "must be true or false (a bool)")
        need(isinstance(self.out_dir, (str, Path)) and str(self.out_dir).strip() != "", "out_dir",
             "must be a folder path")
        for name in ("steps", "batch_size", "click_rounds", "save_every", "log_every", "pool_size", "refresh_every"):
            v = getattr(self, name)
            need(isinstance(v, int) and not isinstance(v, bool) and v >= 1, name, "must be a whole number >= 1")
        need(isinstance(self.warmup_steps, int) and self.warmup_steps >= 0, "warmup_steps",
             "must be a whole number >= 0")
        need(isinstance(self.threads, int) and self.threads >= 0, "threads", "must be >= 0 (0 = torch's default)")
        need(isinstance(self.workers, int) and not isinstance(self.workers, bool) and self.workers >= 0, "workers",
             "must be a whole number >= 0")
        for name in ("max_minutes", "save_every_s", "hard_targets"):
            v = getattr(self, name)
            need(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < math.inf, name,
                 "must be a finite number >= 0 (0 = off)")
        for name in ("lr", "grad_clip", "max_scale"):
            v = getattr(self, name)
            need(isinstance(v, (int, float)) and 0 < v < math.inf, name, "must be a finite number > 0")
        need(isinstance(self.ema_decay, (int, float)) and not isinstance(self.ema_decay, bool)
             and 0 <= self.ema_decay < 1, "ema_decay", "must be a number in [0, 1) (0 = no weight average)")
        need(self.max_scale <= 8, "max_scale", "must be <= 8 (coarser patches hold too little of any target)")
        for name in ("weight_decay", "dice_weight", "focal_weight", "focal_gamma", "cpp_weight", "cpp_pos_weight",
                     "phantom_weight", "real_weight", "folder_weight", "dataset_weight", "large_target_boost",
                     "large_target_ml"):
            v = getattr(self, name)
            need(isinstance(v, (int, float)) and 0 <= v < math.inf, name, "must be a finite number >= 0")
        for name in ("min_lr_ratio", "focal_alpha", "p_augment", "p_domain_rand", "p_cpp", "p_cpp_negative",
                     "p_multiscale", "p_zoom_prior", "p_refine_prior", "p_leak_prior", "p_seeded", "p_lesion",
                     "p_subpart", "p_union", "p_elastic", "p_contrast", "p_slab", "p_arms", "p_self_round",
                     "first_click_depth", "p_contents", "p_seeded_partial",
                     "p_seeded_leak"):
            v = getattr(self, name)
            need(isinstance(v, (int, float)) and 0 <= v <= 1, name, "is a probability/ratio in [0, 1]")
        need(self.p_lesion + self.p_subpart + self.p_union + self.p_contents <= 1, "p_contents",
             f"p_lesion + p_subpart + p_union + p_contents = {self.p_lesion} + {self.p_subpart} + {self.p_union} + "
             f"{self.p_contents} must be <= 1 (the rest of the targets are single structures)")
        need(isinstance(self.elastic_mm, (int, float)) and 0 < self.elastic_mm <= 20, "elastic_mm",
             "must be a displacement in mm, > 0 and <= 20")
        need(self.dice_weight + self.focal_weight > 0, "dice_weight", "dice_weight + focal_weight must be > 0")
        need(self.precision in ("auto", "bf16", "fp32"), "precision", 'must be "auto", "bf16" or "fp32"')
        need(self.grad_rounds in ("all", "one"), "grad_rounds", 'must be "all" or "one"')
        need(self.device in ("auto", "cpu", "cuda") or str(self.device).startswith("cuda:"), "device",
             'must be "auto", "cpu", "cuda" or "cuda:N"')
        need(len(self.phantom_shape) == 3 and all(int(v) >= 64 for v in self.phantom_shape), "phantom_shape",
             "must be 3 sizes (z, y, x) of at least 64 voxels")

    def save(self, path):
        """Write the config as JSON, atomically (a run's folder is recognised by a config.json that loads)."""
        d = dataclasses.asdict(self)
        d.pop("overwrite")  # permissions for this call, not settings of the run
        d.pop("allow_changes")
        text = json.dumps(d, indent=2)
        atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text), suffix="")  # temp name ends in .tmp

    @classmethod
    def load(cls, path) -> "TrainConfig":
        d = json.loads(Path(path).read_text())
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown TrainConfig fields in {path}: {sorted(unknown)}")
        return cls(**d)


#: Files a training run writes in its out_dir (plus ``*.tmp`` while saving); log.txt and cmd.sh are
#: what the launch scripts next to a run write. Anything else in an out_dir is the user's.
RUN_FILES = ("config.json", "last.pt", "metrics.jsonl", "model.pt", "log.txt", "cmd.sh")
#: What a launch script puts in a new run folder before the run starts (see docs/model_card.md).
LAUNCH_FILES = ("log.txt", "cmd.sh")


def _is_run_file(name: str) -> bool:
    """A file a run writes, or the temporary file of one of them (``*.tmp``, ``.model.pt.<random>.tmp.pt``)."""
    return (name in RUN_FILES or name.endswith(".tmp")
            or (name.startswith(".") and ".tmp" in name and name[1:].split(".tmp")[0].rsplit(".", 1)[0] in RUN_FILES))


#: Fields a resumed run may change without ``allow_changes``: where and how long it runs, not what it learns.
RUN_CONTROL = frozenset({"out_dir", "resume", "overwrite", "allow_changes", "init", "steps", "max_minutes",
                         "device", "precision", "threads", "workers", "save_every", "save_every_s", "log_every"})


def config_changes(run: dict, cfg: "TrainConfig") -> list[str]:
    """``"name: the run's value -> cfg's"`` for every setting outside :data:`RUN_CONTROL` that differs between a
    run's saved config (``last.pt["config"]``) and ``cfg``. A field the run predates counts only if ``cfg`` moves
    it off its default."""
    now = json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
    was = json.loads(json.dumps(run, default=str))
    defaults = json.loads(json.dumps(dataclasses.asdict(TrainConfig()), default=str))
    out = []
    for name in sorted(set(now) - RUN_CONTROL):
        before = was.get(name, defaults.get(name))
        if before != now[name]:
            out.append(f"{name}: {before!r} -> {now[name]!r}")
    return out


def check_resume(cfg: "TrainConfig", last: Path, state: dict) -> None:
    """Refuse to resume ``last`` as another run: another model, other settings (unless ``cfg.allow_changes``),
    or no steps left (a finished run would only have its model.pt rewritten)."""
    run = state.get("config") or {}
    done = int(state["step"])
    if run.get("model", cfg.model) != cfg.model:
        raise ValueError(f"'{last}' holds a '{run['model']}' run; resuming it as a '{cfg.model}' model cannot work. "
                         f"Pass --model {run['model']} to continue it, or choose another --out-dir for the new run.")
    changes = config_changes(run, cfg)
    if changes and not cfg.allow_changes:
        shown = "; ".join(changes[:12]) + (f"; ... ({len(changes)} in all)" if len(changes) > 12 else "")
        raise ValueError(f"'{last}' is a run made with other settings than these ({shown}). Resume it with its "
                         f"own (--config {last.parent / 'config.json'}, or the command that started it), pass "
                         "--allow-changes to go on with these, or choose another --out-dir for a new run.")
    if done >= cfg.steps:
        raise ValueError(f"the run in '{last.parent}' is at step {done}, and --steps {cfg.steps} leaves nothing to "
                         f"train. Pass --steps above {done} to train it on, or export it: python -m "
                         f"ctsam3d_nb.training.export {last.parent} model.pt")


def _run_config(path: Path):
    """``(TrainConfig, None)`` if ``path`` is a run's config.json, else ``(None, why not)``."""
    if not path.is_file():
        return None, "no config.json"
    try:
        return TrainConfig.load(path), None
    except (ValueError, TypeError, OSError) as e:
        return None, f"its config.json is not a TrainConfig ({str(e).splitlines()[0][:160]})"


def check_out_dir(cfg: TrainConfig) -> None:
    """Refuse an ``out_dir`` where training would overwrite files a run did not write. Reads only.

    Training writes config.json, last.pt, metrics.jsonl and model.pt into ``cfg.out_dir``. It may, when

    * the folder does not exist or is empty;
    * it is a run's folder (its config.json loads as a TrainConfig) holding only run files
      (`RUN_FILES` and ``*.tmp``): the run is continued (``resume``) or, with ``resume=False``,
      replaced;
    * it is resumed: ``resume`` and a run's folder with a last.pt (other files are left alone);
    * ``cfg.overwrite`` is set.

    Raises:
        FileExistsError: ``out_dir`` is a file, or holds files a run did not write (the message
            lists them and says what to do); resuming a run of another model.
    """
    out = Path(cfg.out_dir).expanduser()
    if not out.exists():
        return
    if not out.is_dir():
        raise FileExistsError(f"out_dir '{out}' is a file, not a folder. Choose a new folder name for the run.")
    if cfg.overwrite:
        return
    entries = sorted(out.iterdir())
    if not entries:
        return
    run, why = _run_config(out / "config.json")
    if run is not None and cfg.resume and (out / "last.pt").is_file():
        if run.model != cfg.model:
            raise FileExistsError(f"out_dir '{out}' holds a '{run.model}' run; resuming it as a '{cfg.model}' model "
                                  f"cannot work. Pass --model {run.model} to continue it, or choose another --out-dir "
                                  "for the new run.")
        return
    foreign = [p.name + ("/" if p.is_dir() else "") for p in entries if not (p.is_file() and _is_run_file(p.name))]
    launch_only = all(p.is_file() and p.name in LAUNCH_FILES for p in entries)  # a launch script and its log
    if (run is not None and not foreign) or launch_only:
        return
    listed = foreign[:8] + ([f"... ({len(foreign)} in all)"] if len(foreign) > 8 else [])
    what = (f"files a training run did not write: {listed}" if run is not None else
            f"files, but it is not a training run's folder ({why}): {[p.name for p in entries][:8]}")
    raise FileExistsError(
        f"out_dir '{out}' holds {what}. Training would write {', '.join(RUN_FILES[:4])} there, replacing any "
        "of yours. Choose another --out-dir (a new or empty folder), or pass --overwrite to train there anyway "
        "(files with other names are left alone).")


#: The training data of the long runs (session 5 on): phantoms with the real training CT, multi-scale patches,
#: synthetic lesions, sub-parts and unions as targets, elastic and contrast augmentation of the real CT, scan slabs,
#: and (from session 10) a quarter of the phantoms with the arms down in a wide field; from session 26 a tenth of the
#: targets clicked on their darker contents (gas in the gut, marrow in a humerus), as the capacity run since session 25.
DATA_RECIPE = dict(phantom_shape=(400, 256, 256), cpp_pos_weight=500.0, p_cpp_negative=0.3, large_target_boost=2.0,
                   p_multiscale=0.4, p_refine_prior=0.2, p_leak_prior=0.15, p_lesion=0.15, p_subpart=0.05, p_union=0.05,
                   p_contents=0.1,
                   p_elastic=0.7, p_contrast=0.5, real_uniform_targets=True, p_slab=0.15, p_arms=0.25,
                   real_pairs=[("../shared/data/real_ct/example_ct_sm.nii.gz",
                                "../shared/data/real_ct/example_seg.nii.gz")], real_weight=0.2)

#: Named starting points for ``python -m ctsam3d_nb.train --preset NAME`` (flags still override them).
PRESETS = {
    # One large GPU (H100/H200 class) with 16 CPU cores, within 9 minutes of wall time: fine-tune the shipped
    # nano for 8 minutes with bf16 autocast, 14 data workers cutting patches, last.pt every minute and
    # model.pt at the end (then `python -m ctsam3d_nb.training.export <out-dir> nano.pt`). For the paper's
    # size: --model tiny --init "" (from scratch; no tiny weights are shipped); for nano's weights in the paper's
    # encoder depths: --model nano_deep (grown from --init nano, modeling/grow.py).
    "gpu-9min": dict(DATA_RECIPE, device="cuda", model="nano", init="nano", batch_size=24, workers=14,
                     max_minutes=8.0, save_every_s=60.0, steps=100_000, save_every=1000, log_every=20,
                     warmup_steps=50, lr=5e-4, refresh_every=192, pool_size=4, click_rounds=3, threads=2,
                     ema_decay=0.995),
    # The long CPU run of docs/model_card.md: fine-tune the shipped nano in the background on a 2-core CPU,
    # bf16 where the CPU has it, two data workers generating phantoms beside the step, resumable. One gradient
    # round per step (RITM: the bf16 step 0.65 -> 0.31 s) and a new phantom every 96 samples (generating one costs
    # ~4 s of CPU): 2.2 -> 3.6 patches/s, docs/benchmarks.md (session 8); a second worker hides part of the wait
    # for each new phantom (3.21 -> 3.42 patches/s over 20 min on the 2-core AMD CPU, session 17). The GPU preset
    # keeps every round: there the data workers, not the step, bound the rate.
    "cpu-long": dict(DATA_RECIPE, device="cpu", model="nano", init="nano", batch_size=2, workers=2, steps=20_000,
                     save_every=100, save_every_s=600.0, log_every=20, warmup_steps=50, lr=3e-4, threads=2,
                     ema_decay=0.999, grad_rounds="one", refresh_every=96),
}
