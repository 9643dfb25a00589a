"""The training loop: simulated click rounds, Dice+focal and CPP losses, DDP, exact resume.

Reads top to bottom: batch → rounds of (decode → loss → next click) → CPP loss →
backward → clip → step → log. Multi-GPU / multi-node is plain torch.distributed:
launch with ``torchrun --nproc_per_node N -m ctsam3d_nb.train ...``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from ..clicks import first_click, next_click
from ..checkpoint import load_model, save_checkpoint
from ..modeling import build_model
from ..modeling.cpp import cpp_target_heatmap
from ..modeling.grow import grow_model
from ..modeling.prompt import build_prompt_maps
from ..patch_model import resolve_device
from ..patches import PATCH, STRIDE
from .config import TrainConfig, check_out_dir, check_resume
from .difficulty import TargetDifficulty
from . import precision
from .data import PatchSampler, dataset_source, find_pairs, folder_source, phantom_source
from .losses import dice_score, heatmap_loss, mask_loss
from .targets import partial_slab

SLAB = PATCH - STRIDE  # overlap depth of neighbouring patches
#: A step whose gradient norm (before clipping) is above this is skipped like a non-finite one. Real steps give
#: 0.1-10; a broken bf16 kernel gave 1e30 (modeling/common.conv3d), which clipping would turn into a full-size
#: update of that one weight while every other gradient shrinks to nothing.
SANE_GRAD_NORM = 1e6


class TrainStep(torch.nn.Module):
    """One training step's forward pass (wrapped in DDP when distributed)."""

    def __init__(self, model, cfg: TrainConfig):
        super().__init__()
        self.model, self.cfg = model, cfg

    def forward(self, batch, rng: np.random.Generator):
        cfg, model = self.cfg, self.model
        img, tgt = batch["image"], batch["target"]
        b = img.shape[0]
        feats = model.encode(img)
        gt = tgt[:, 0].bool().cpu().numpy()
        points, labels = _first_clicks(gt, batch["prior"].cpu().numpy() > 0.5, batch["first"], rng,
                                       cfg.first_click_depth, batch.get("clicks"))
        prev = batch["prior"]
        rounds, first_grad = cfg.click_rounds, 0  # rounds run; the first one whose loss is back-propagated
        if cfg.grad_rounds == "one":  # RITM: earlier rounds only place clicks, the last one is trained
            rounds = int(rng.integers(1, cfg.click_rounds + 1))
            first_grad = rounds - 1
        loss, dices, first_dices = 0.0, [], []
        for r in range(rounds):
            prompt = build_prompt_maps(prev, [np.asarray(p, float).reshape(-1, 3) for p in points],
                                       [np.asarray(l, np.int64) for l in labels], size=img.shape[-3:],
                                       sigma=model.config.sigma, radius=model.config.click_radius, device=img.device)
            with torch.set_grad_enabled(torch.is_grad_enabled() and r >= first_grad):
                logits = model.decode(feats, prompt)
            if r >= first_grad:
                loss = loss + mask_loss(logits, tgt, cfg.dice_weight, cfg.focal_weight,
                                        cfg.focal_alpha, cfg.focal_gamma) / (rounds - first_grad)
            prob = torch.sigmoid(logits.detach().float())
            pred = (prob[:, 0] > 0.5).cpu().numpy()
            each = dice_score(torch.from_numpy(pred), torch.from_numpy(gt))
            if r == 0:
                first_dices = each.tolist()
            dices.append(float(each.mean()))
            if r + 1 < rounds and not (cfg.p_self_round and rng.random() < cfg.p_self_round):
                for i in range(b):  # the next round's clicks (none in a self round: the model refines its own mask)
                    nxt = next_click(pred[i], gt[i], rng=rng)
                    if nxt is not None:
                        points[i].append(nxt[0])
                        labels[i].append(1 if nxt[1] else 0)
            prev = prob
        metrics = {"loss_mask": loss.item(), "rounds": rounds, **{f"dice_r{r + 1}": d for r, d in enumerate(dices)}}
        if batch["image_v"] is not None:
            heat = model.cpp(batch["image_u_cpp"], prob[batch["v_index"]], batch["image_v"])
            cpp_loss = heatmap_loss(heat, batch["heat_v"], cfg.cpp_pos_weight)
            loss = loss + cfg.cpp_weight * cpp_loss
            metrics["loss_cpp"] = cpp_loss.item()
        metrics["loss"] = loss.item()
        return loss, {**metrics, "first_dices": first_dices}  # per sample (not logged: for TargetDifficulty)


def _first_clicks(gt, prior, modes, rng, depth: float = 0.5, clicks=None):
    """Round-1 clicks per sample (see `Sample.first`): points and 1/0 labels, possibly none; a target's click at
    least ``depth`` as deep as its deepest point (`TrainConfig.first_click_depth`), a "contents" sample's the one
    its sampler placed on what the target holds (``clicks[i]``, `Sample.click`; the deep click when None)."""
    points, labels = [], []
    for i, (g, p, mode) in enumerate(zip(gt, prior, modes)):
        pts, lab = [], []
        if mode == "prior" and p.any():
            pts, lab = [first_click(p & g, rng=rng) if (p & g).any() else first_click(g, rng=rng)], [1]
        elif mode == "error":
            nxt = next_click(p, g, rng=rng)
            if nxt is not None:
                pts, lab = [nxt[0]], [1 if nxt[1] else 0]
        elif mode != "none":
            pt = clicks[i] if mode == "contents" and clicks is not None else None
            pts, lab = [pt or first_click(g, rng=rng, min_fraction=depth)], [1]
        points.append(pts)
        labels.append(lab)
    return points, labels


def _collate(samples, cfg: TrainConfig, rng, device, sigma: float):
    img = torch.from_numpy(np.stack([s.image for s in samples]))[:, None]
    tgt = torch.from_numpy(np.stack([s.target for s in samples]).astype(np.float32))[:, None]
    prior = torch.zeros(tgt.shape[:1] + tgt.shape[2:])
    first = [s.first for s in samples]
    for i, s in enumerate(samples):  # start some rounds like a patch grown by CPP: a mask slab at one face
        if s.prior is not None:  # a zoom-out or refine step (the sampler drew the start)
            prior[i] = torch.from_numpy(s.prior)
            continue
        faces = [(a, d) for a in range(3) for d in (-1, 1)
                 if s.target[(slice(None),) * a + ((slice(0, 2) if d < 0 else slice(-2, None)),)].any()]
        if faces and rng.random() < cfg.p_seeded:
            a, d = faces[rng.integers(len(faces))]
            sl = (slice(None),) * a + ((slice(0, SLAB) if d < 0 else slice(-SLAB, None)),)
            slab = s.target[sl]
            partial = cfg.p_seeded_partial > 0 and rng.random() < cfg.p_seeded_partial
            if partial:
                slab = partial_slab(slab, rng)
            leak = s.leak is not None and cfg.p_seeded_leak > 0 and rng.random() < cfg.p_seeded_leak
            if leak:
                slab = slab | s.leak[sl]  # a neighbour's leak carried in: to drop (the label stays the target)
            if (partial or leak) and first[i] == "target":  # clicked in what was carried of the target, as the
                first[i] = "prior"  # predictor seeds a grown patch (`clicks.first_click` on prior & target)
            prior[i][sl] = torch.from_numpy(slab.astype(np.float32))
    batch = {"image": _channels_last(img.to(device)), "target": tgt.to(device), "prior": prior.to(device),
             "image_v": None,
             "first": first, "clicks": [s.click for s in samples],
             # what TargetDifficulty scores: the ids of structure samples clicked at their deepest point, else 0
             "difficulty_ids": [s.label if s.kind == "structure" and f == "target" else 0
                                for s, f in zip(samples, first)]}
    with_v = [i for i, s in enumerate(samples) if s.image_v is not None]
    if with_v:
        batch["v_index"] = torch.tensor(with_v)
        batch["image_u_cpp"] = _channels_last(img[with_v].to(device))
        batch["image_v"] = _channels_last(torch.from_numpy(np.stack([samples[i].image_v for i in with_v]))[:, None]
                                          .to(device))
        heat = np.stack([cpp_target_heatmap(samples[i].target_v, sigma) for i in with_v])
        batch["heat_v"] = torch.from_numpy(heat)[:, None].to(device)
    return batch


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last_3d)


def clip_gradients(model, max_norm: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip the mask model's and the CPP net's gradients apart; returns both norms (before clipping).

    Their losses share no parameters (the CPP net reads a detached mask), so a large CPP
    gradient must not shrink the mask model's step, as one global norm would.
    """
    cpp = list(model.cpp_net.parameters())
    ids = {id(p) for p in cpp}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return (torch.nn.utils.clip_grad_norm_(rest, max_norm), torch.nn.utils.clip_grad_norm_(cpp, max_norm))


def _lr(cfg: TrainConfig, step: int, time_fraction: float | None = None) -> float:
    """Warm-up over steps, then cosine decay over the steps (or over the time limit's fraction)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    if time_fraction is not None:
        t = time_fraction
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def _sources(cfg: TrainConfig):
    sources = []
    if cfg.phantom_weight > 0:
        sources.append((phantom_source(cfg.seed * 1_000_000, cfg.phantom_shape, cfg.p_arms), cfg.phantom_weight))
    if cfg.real_pairs and cfg.real_weight > 0:
        sources.append((folder_source([tuple(p) for p in cfg.real_pairs], seed=cfg.seed), cfg.real_weight))
    if cfg.folder and cfg.folder_weight > 0:
        sources.append((folder_source(find_pairs(cfg.folder), cfg.folder_convention, cfg.seed), cfg.folder_weight))
    if cfg.dataset and cfg.dataset_weight > 0:
        sources.append((dataset_source(cfg.dataset, cfg.dataset_root, cfg.dataset_options, cfg.seed),
                        cfg.dataset_weight))
    if not sources:
        raise ValueError("no training data: set phantom_weight > 0, real_pairs + real_weight, folder, "
                         "or dataset + dataset_root")
    return sources


class _SampleStream(torch.utils.data.IterableDataset):
    """Batches of samples cut in DataLoader worker processes (``cfg.workers``): each worker draws its own
    stream (sampler rank ``rank * 1000 + worker``), starting where a resumed run left off."""

    def __init__(self, cfg: TrainConfig, sources, rank: int, start_step: int, difficulty=None):
        self.cfg, self.sources, self.rank, self.start = cfg, sources, rank, start_step
        self.difficulty = difficulty  # a TargetDifficulty (its table in shared memory), or None

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, n = (info.id, info.num_workers) if info is not None else (0, 1)
        sampler = PatchSampler.from_config(self.cfg, self.sources, self.rank * 1000 + worker, self.difficulty)
        count = self.start * self.cfg.batch_size // n
        while True:
            yield [sampler.sample(count + i) for i in range(self.cfg.batch_size)]
            count += self.cfg.batch_size


def _yield_cores(_worker: int) -> None:
    """Data workers run at the lowest priority: they take the cores the step leaves idle (its single-threaded
    parts, the wait for the next batch) instead of stalling the step's threads on a 2-core CPU (pipeline
    3.8 -> 4.0 patches/s, docs/benchmarks.md "session 9"); where cores are free it changes nothing."""
    if hasattr(os, "nice"):  # not on Windows
        os.nice(19)


def _model_and_state(cfg: TrainConfig, device: torch.device, last: Path, difficulty=None):
    """The model, its AdamW and weight average (or None), the step to start at and the training seconds so far:
    resumed from ``last`` when it exists (and ``cfg.resume``), else fresh or from ``cfg.init``; ``difficulty``
    (a TargetDifficulty) gets the table a resumed run saved."""
    # channels-last 3D weights and inputs: oneDNN's bf16 convolutions run 14 % faster that way (docs/benchmarks.md)
    model = build_model(cfg.model).to(device, memory_format=torch.channels_last_3d)
    # the fused kernel: one pass over all weights (on this project's CPU 5 ms per step instead of 32)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            fused=device.type in ("cpu", "cuda"))
    start, trained_s = 0, 0.0
    state = torch.load(last, map_location=device, weights_only=True) if cfg.resume and last.exists() else None
    if state is not None:
        check_resume(cfg, last, state)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start = int(state["step"])
        trained_s = float(state.get("trained_s", 0.0))
        if difficulty is not None and "difficulty" in state:
            difficulty.load_state_dict(state["difficulty"])
    elif cfg.init:  # fine-tune: start from trained weights (a model name for shipped ones, or a .pt)
        init = load_model(cfg.init, device="cpu")
        if init.config.name != cfg.model:  # a deeper encoder starts as the trained model (modeling/grow.py)
            try:
                init = grow_model(init, cfg.model)
            except ValueError as e:  # growable()'s reason
                raise ValueError(f"init checkpoint '{cfg.init}' is a '{init.config.name}' model, not "
                                 f"'{cfg.model}', and cannot be grown into one: {e}") from None
        model.load_state_dict({k: v.float() for k, v in init.state_dict().items()})
    ema = None
    if cfg.ema_decay:  # the average starts at the weights the run starts from (a resumed run without one too)
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
        if state is not None and "ema" in state:
            ema.load_state_dict(state["ema"])
    return model, opt, ema, start, trained_s


def train(cfg: TrainConfig, callbacks=(), progress: bool = True):
    """Train (or resume) according to ``cfg``; returns the trained (unwrapped) model: its weight average
    when ``cfg.ema_decay`` is set (the weights model.pt holds).

    ``callbacks`` are called as ``cb(step, metrics)`` on rank 0 every ``log_every`` steps.

    Raises (user errors; the CLI prints them as one ``error:`` line):
        ValueError: a config value (TrainConfig.validate), no training data, unreadable data
            (CTLoadError) or ``init`` checkpoint (CheckpointError).
        FileExistsError: ``out_dir`` holds files a run did not write (`check_out_dir`).
        OSError, KeyError, TypeError: missing data folders, unknown dataset names/options.
    """
    cfg.validate()
    check_out_dir(cfg)  # never write over files a run did not write (unless cfg.overwrite)
    sources = _sources(cfg)  # no/unknown/missing training data: refused before anything is written
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() and cfg.device != "cpu" else "gloo")
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    device = resolve_device(cfg.device)  # "auto": CUDA where there is one; "cuda" where there is none: the fix
    if device.type == "cuda" and device.index is None:  # torch.cuda.set_device needs an index: this rank's GPU
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if cfg.precision == "bf16" and device.type == "cpu" and not precision.cpu_has_native_bf16():
        raise ValueError(
            "TrainConfig.precision = 'bf16' on a CPU without bfloat16 hardware (no AVX512-BF16 or AMX): oneDNN "
            "emulates it there, and the weight gradient of the 3-channel prompt convolution comes out wrong (1e11 "
            "instead of 1e-6, torch 2.13) besides a 1.4x slower step. Use --precision auto (float32 here) or fp32.")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out_dir)
    torch.manual_seed(cfg.seed)
    last = out / "last.pt"
    difficulty = TargetDifficulty(cfg.hard_targets) if cfg.hard_targets else None
    model, opt, ema, start, trained_s = _model_and_state(cfg, device, last, difficulty)
    if rank == 0:  # written only once the model and its state loaded: a refused start leaves the folder as it was
        out.mkdir(parents=True, exist_ok=True)
        cfg.save(out / "config.json")
        if start == 0:
            (out / "metrics.jsonl").unlink(missing_ok=True)  # a new run's log, not appended to the last one's
    step_module = TrainStep(model, cfg)
    if distributed:
        step_module = torch.nn.parallel.DistributedDataParallel(
            step_module, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True)
    if cfg.workers:  # patches are cut in worker processes while the model trains
        stream = iter(torch.utils.data.DataLoader(_SampleStream(cfg, sources, rank, start, difficulty),
                                                  batch_size=None,
                                                  num_workers=cfg.workers, collate_fn=lambda x: x,
                                                  prefetch_factor=4, persistent_workers=True,
                                                  worker_init_fn=_yield_cores))
        next_samples = lambda step: next(stream)  # noqa: E731
    else:  # in this process: the data stream is a pure function of the step (exact resume)
        sampler = PatchSampler.from_config(cfg, sources, rank, difficulty)
        next_samples = lambda step: [sampler.sample(step * cfg.batch_size + i)  # noqa: E731
                                     for i in range(cfg.batch_size)]
    bf16 = precision.use_bf16(cfg.precision, device)
    limit_s = cfg.max_minutes * 60
    t0, t_saved = time.perf_counter(), time.perf_counter()

    def save(done):
        tmp = last.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": done,
                    "trained_s": trained_s + time.perf_counter() - t0, "config": dataclasses.asdict(cfg),
                    **({"ema": ema.state_dict()} if ema is not None else {}),
                    **({"difficulty": difficulty.state_dict()} if difficulty is not None else {})}, tmp)
        os.replace(tmp, last)

    metrics_file = out / "metrics.jsonl"
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not (progress and rank == 0),
               desc=f"train {cfg.model}")
    t_last, n_last = time.perf_counter(), 0
    model.train()
    done, skipped = start, 0  # skipped: steps whose update was dropped for a non-finite or absurd gradient
    for step in bar:
        rng = np.random.default_rng([cfg.seed, rank, step, 3])
        torch.manual_seed(cfg.seed * 7919 + step * 31 + rank)
        samples = next_samples(step)
        batch = _collate(samples, cfg, rng, device, model.config.cpp_sigma)
        elapsed = trained_s + time.perf_counter() - t0
        fraction = min(1.0, elapsed / limit_s) if limit_s else None
        for g in opt.param_groups:
            g["lr"] = _lr(cfg, step, fraction)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss, metrics = step_module(batch, rng)
        first_dices = metrics.pop("first_dices")
        if difficulty is not None:
            difficulty.update(batch["difficulty_ids"], first_dices)
        loss.backward()
        gnorm, gnorm_cpp = clip_gradients(model, cfg.grad_clip)
        finite = bool((gnorm < SANE_GRAD_NORM) & (gnorm_cpp < SANE_GRAD_NORM) & torch.isfinite(loss.detach()))
        if distributed:  # every rank skips the same steps (DDP has averaged the gradients already)
            flag = torch.tensor([float(finite)], device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
            finite = bool(flag.item())
        if finite:
            opt.step()
            if ema is not None:
                ema.update_parameters(model)
        else:  # a non-finite loss, or a non-finite or absurd gradient: skip the update rather than poison the weights
            skipped += 1
        opt.zero_grad(set_to_none=True)
        n_last += cfg.batch_size * world
        done = step + 1
        if rank == 0 and (done % cfg.log_every == 0 or done == cfg.steps):
            now = time.perf_counter()
            metrics.update(step=done, lr=_lr(cfg, step, fraction), grad_norm=float(gnorm),
                           grad_norm_cpp=float(gnorm_cpp), patches_per_s=n_last / (now - t_last), time=time.time(),
                           skipped_steps=skipped, precision="bf16" if bf16 else "fp32")
            t_last, n_last = now, 0
            with open(metrics_file, "a") as f:
                f.write(json.dumps(metrics) + "\n")
            last_dice = metrics[f"dice_r{metrics['rounds']}"]
            bar.set_postfix(loss=f"{metrics['loss']:.3f}", dice=f"{last_dice:.2f}")
            for cb in callbacks:
                cb(done, metrics)
        out_of_time = bool(limit_s) and trained_s + time.perf_counter() - t0 >= limit_s
        if distributed and limit_s:  # every rank stops at the same step
            flag = torch.tensor([float(out_of_time)], device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            out_of_time = bool(flag.item())
        timed_save = bool(cfg.save_every_s) and time.perf_counter() - t_saved >= cfg.save_every_s
        if rank == 0 and (done % cfg.save_every == 0 or done == cfg.steps or out_of_time or timed_save):
            save(done)
            t_saved = time.perf_counter()
        if out_of_time:
            break
    final = model if ema is None else ema.module  # the weight average, when kept
    if rank == 0:
        save_checkpoint(final, out / "model.pt", overwrite=True, metadata={
            "training": {"config": dataclasses.asdict(cfg), "steps": done, "world_size": world,
                         "weights": "raw" if ema is None else f"ema {cfg.ema_decay}"}})
    if distributed:
        dist.barrier()
    return final
