"""Training batches from the procedural world, for both stages.

``pretrain``: single-view clips along continuous camera paths (orbits, dollies, head motion, exo -> ego
moves): generic camera-conditioned video modelling. ``finetune``: Syn2Seq triplets ``[exo | transition |
ego]`` with transition frames from an interpolator, the ideal rendered in-betweens, or none (direct), cut
into training windows by the stochastic decomposition of :mod:`syn2seq_core.sequence`.

Every batch is a pure function of a ``torch.Generator`` (seeded by the trainer from seed, step and rank):
scene seeds, directions, windows, context choices and noise times all come from it. Training scene seeds
are drawn below ``pipeline.HELDOUT_SEED_BASE``; held-out evaluation takes use seeds at or above it.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .. import conventions as C
from ..geometry.cameras import Cameras, invert_pose
from ..pipeline import HELDOUT_SEED_BASE, TrainingBatch, ray_input, sequence_ray_input
from ..sequence import build_sequence, decompose
from ..train import network_config
from .synthetic import SyntheticConfig, render_camera_path_clips, render_takes


def _seeds(generator: torch.Generator, n: int, heldout: bool = False) -> list[int]:
    base = HELDOUT_SEED_BASE if heldout else 0
    return torch.randint(base, base + HELDOUT_SEED_BASE, (n,), generator=generator).tolist()


def _uniform(generator: torch.Generator, *shape) -> Tensor:
    return torch.rand(*shape, generator=generator)


def world_config(data) -> SyntheticConfig:
    return SyntheticConfig(size=data.size, supersample=data.supersample, exo_frames=data.exo_frames,
                           ego_frames=data.ego_frames)


def transition_frames(data, exo_last: Tensor, ego_first: Tensor, ideal: Tensor | None) -> Tensor | None:
    """[B, n, 3, H, W] transition frames from ``exo_last``/``ego_first`` [B, 3, H, W], per the data config."""
    n = data.transition_frames
    if data.transition == "none" or n == 0:
        return None
    if data.transition == "ideal":
        return ideal
    from ..interpolation.base import interpolate

    return interpolate(exo_last, ego_first, n, backend=data.interpolator)


def draw_noise_levels(g: torch.Generator, shape: tuple[int, ...], shared_prob: float) -> Tensor:
    """[..., T] noise times in [0, 1): independent per frame, or, with probability ``shared_prob`` per
    sequence, one level for the whole sequence (context frames are set clean afterwards). No extra draws
    when ``shared_prob`` is 0, so the batches of configs without it are unchanged."""
    t = _uniform(g, *shape)
    if shared_prob > 0:
        shared = _uniform(g, *shape[:-1], 1) < shared_prob
        t = torch.where(shared, t[..., :1].expand_as(t), t)
    return t


def pretrain_source(cfg, heldout: bool = False) -> Callable[[torch.Generator, int], TrainingBatch]:
    data = cfg.data
    net = network_config(cfg)
    frames = data.clip_frames or net.max_frames
    world = world_config(data)

    def draw(g: torch.Generator, batch: int) -> TrainingBatch:
        clips = render_camera_path_clips(_seeds(g, batch, heldout), frames, world)
        c2w = invert_pose(clips.c2w[:, :1]) @ clips.c2w  # relative to each clip's first camera
        rays = ray_input(net, clips.K, c2w, data.size, data.size)
        if net.cue != "none":  # single-view clips: no other view to warp; as with no pose
            rays = torch.cat([rays, rays.new_zeros(*rays.shape[:-1], net.cond_channels - rays.shape[-1])], -1)
        noise_t = draw_noise_levels(g, (batch, frames), data.shared_noise_prob)
        loss_mask = torch.ones(batch, frames)
        # As at inference, the beginning of a clip is often clean context: no noise, no loss.
        with_context = _uniform(g, batch) < data.clean_context_prob
        n_ctx = torch.randint(1, max(2, frames // 2 + 1), (batch,), generator=g)
        ctx = (torch.arange(frames)[None] < n_ctx[:, None]) & with_context[:, None]
        noise_t[ctx], loss_mask[ctx] = 0.0, 0.0
        return TrainingBatch(clips.frames, rays.float(), noise_t, loss_mask, torch.zeros(batch, frames,
                                                                                         dtype=torch.long))

    return draw


def finetune_source(cfg, heldout: bool = False) -> Callable[[torch.Generator, int], TrainingBatch]:
    data = cfg.data
    world = world_config(data)
    mode = "direct" if data.transition == "none" else ("exo2ego" if data.pose_interpolation else "video_only")
    full = data.exo_frames + data.ego_frames + (0 if mode == "direct" else data.transition_frames)
    window = data.window or full
    net = network_config(cfg)
    cue = net.cue != "none"

    def draw(g: torch.Generator, batch: int) -> TrainingBatch:
        n_ideal = data.transition_frames if data.transition == "ideal" else 0
        takes = render_takes(_seeds(g, batch, heldout), world, transition=n_ideal, depth=cue)
        reverse = _uniform(g, batch) < data.ego2exo_prob
        out = {k: [] for k in ("frames", "rays", "noise_t", "loss_mask", "roles")}
        size = data.size
        for i in range(batch):
            exo = Cameras(takes.exo_c2w[i], takes.exo_K[i], size, size)
            ego = Cameras(takes.ego_c2w[i], takes.ego_K[i], size, size)
            exo_f, ego_f = takes.exo_frames[i], takes.ego_frames[i]
            if reverse[i]:
                first, last = ego_f[-1:], exo_f[:1]
                ideal = None  # the ideal in-betweens are rendered exo -> ego only
            else:
                first, last = exo_f[-1:], ego_f[:1]
                ideal = takes.transition_frames[i][None] if n_ideal else None
            tr = transition_frames(data, first, last, ideal)
            seq_mode = mode if not reverse[i] else ("ego2exo" if mode == "exo2ego" else mode)
            direction = "ego2exo" if reverse[i] else "exo2ego"
            seq = build_sequence(exo, ego, exo_frames=exo_f, ego_frames=ego_f,
                                 transition_frames=None if tr is None else tr[0], mode=seq_mode,
                                 direction=None if seq_mode == "ego2exo" else direction)
            if cue:
                seq = seq.with_depth_cue(takes.ego_depth[i] if reverse[i] else takes.exo_depth[i])
            if window < len(seq):
                seq, _ = decompose(seq, window, g)
            T = len(seq)
            noise_t = draw_noise_levels(g, (T,), data.shared_noise_prob)
            loss_mask = torch.ones(T)
            loss_mask[seq.roles == C.ROLE_TRANSITION] = data.transition_loss_weight
            if bool(_uniform(g, 1) < data.clean_context_prob):
                src = seq.roles == seq.source_role
                noise_t[src], loss_mask[src] = 0.0, 0.0
                if data.full_noise_prob > 0 and bool(_uniform(g, 1) < data.full_noise_prob):
                    noise_t[~src] = 1.0
            out["frames"].append(seq.frames)
            out["rays"].append(sequence_ray_input(net, seq))
            out["noise_t"].append(noise_t)
            out["loss_mask"].append(loss_mask)
            out["roles"].append(seq.roles)
        return TrainingBatch(*(torch.stack(out[k]) for k in ("frames", "rays", "noise_t", "loss_mask", "roles")))

    return draw


def batch_source(cfg, heldout: bool = False) -> Callable[..., TrainingBatch]:
    """The batch function of a training config's stage: ``draw(generator, batch_size) -> TrainingBatch``, or
    ``draw([generator, ...])``: one sequence per generator, each drawn from its own (what the training loop
    does, so that a sequence does not depend on how many processes share the batch); ``heldout``: scenes of
    the held-out seeds (at or above ``HELDOUT_SEED_BASE``), never trained on."""
    draw = pretrain_source(cfg, heldout) if cfg.stage == "pretrain" else finetune_source(cfg, heldout)

    def source(g, batch: int | None = None) -> TrainingBatch:
        if isinstance(g, (list, tuple)):
            return TrainingBatch.cat([draw(one, 1) for one in g])
        return draw(g, batch)

    return source
