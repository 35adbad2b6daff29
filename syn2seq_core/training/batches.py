"""Training batches from the procedural world, for both stages.

``pretrain``: single-view clips along continuous camera paths (orbits, dollies, head motion, exo -> ego
moves): generic camera-conditioned video modelling. ``finetune``: Syn2Seq triplets ``[exo | transition |
ego]`` with transition frames from an interpolator, the ideal rendered in-betweens, or none (direct), cut
into training windows by the stochastic decomposition of :mod:`syn2seq_core.generation.sequence`.

Every batch is a pure function of a ``torch.Generator`` (seeded by the trainer from seed, step and rank):
scene seeds, directions, windows, context choices and noise times all come from it. Training scene seeds
are drawn below ``pipeline.HELDOUT_SEED_BASE``; held-out evaluation takes use seeds at or above it.

With ``[data] shards``, finetune sequences come from prepared shards instead (:class:`ShardsSource`), built by
the same :func:`triplet_sequence`, and the trainer reads them through :func:`step_loader` (a DataLoader whose
item is a step).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ..base import conventions as C
from ..base.errors import require
from ..data.synthetic import SyntheticConfig, render_camera_path_clips, render_takes
from ..generation.pipeline import HELDOUT_SEED_BASE, TrainingBatch, ray_input, sequence_ray_input
from ..generation.sequence import build_sequence, decompose
from ..geometry.cameras import Cameras, invert_pose
from .config import network_config


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


def triplet_sequence(data, net, g: torch.Generator, exo: Cameras, ego: Cameras, exo_f: Tensor, ego_f: Tensor,
                     transition: Tensor | None, source_depth: Tensor | None, reverse: bool):
    """One training sequence of a Syn2Seq triplet, the part every finetune source shares (the procedural world
    and shards alike): the sequence ``[exo | transition | ego]`` (``[ego | transition | exo]`` when ``reverse``)
    in the config's mode, its depth-warp cue from ``source_depth`` [n_src, h, w] when the network has one (the
    empty cue instead in a share ``cue_dropout_prob`` of sequences), a
    window by the stochastic decomposition, noise levels, clean context and loss weights, all drawn from
    ``g``; and the network's camera input. transition: [n, 3, H, W] frames from the source's last frame to the
    target's first (None: none). Returns (frames, rays, noise_t, loss_mask, roles) of one sequence."""
    mode = "direct" if data.transition == "none" else ("exo2ego" if data.pose_interpolation else "video_only")
    full = data.exo_frames + data.ego_frames + (0 if mode == "direct" else data.transition_frames)
    window = data.window or full
    seq_mode = mode if not reverse else ("ego2exo" if mode == "exo2ego" else mode)
    direction = "ego2exo" if reverse else "exo2ego"
    seq = build_sequence(exo, ego, exo_frames=exo_f, ego_frames=ego_f, transition_frames=transition,
                         n_transition=None if mode == "direct" else data.transition_frames, mode=seq_mode,
                         direction=None if seq_mode == "ego2exo" else direction)
    if net.cue != "none":
        # (the draw only where dropout is on, so runs without it keep their random streams)
        dropped = data.cue_dropout_prob > 0 and bool(_uniform(g, 1) < data.cue_dropout_prob)
        seq = seq.with_empty_cue() if dropped else seq.with_depth_cue(source_depth)
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
    return seq.frames, sequence_ray_input(net, seq), noise_t, loss_mask, seq.roles


def _stack(parts: list[tuple]) -> TrainingBatch:
    return TrainingBatch(*(torch.stack([p[k] for p in parts]) for k in range(5)))


def finetune_source(cfg, heldout: bool = False) -> Callable[[torch.Generator, int], TrainingBatch]:
    data = cfg.data
    world = world_config(data)
    net = network_config(cfg)
    cue = net.cue != "none"

    def draw(g: torch.Generator, batch: int) -> TrainingBatch:
        n_ideal = data.transition_frames if data.transition == "ideal" else 0
        takes = render_takes(_seeds(g, batch, heldout), world, transition=n_ideal, depth=cue)
        reverse = _uniform(g, batch) < data.ego2exo_prob
        parts = []
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
            depth = (takes.ego_depth[i] if reverse[i] else takes.exo_depth[i]) if cue else None
            parts.append(triplet_sequence(data, net, g, exo, ego, exo_f, ego_f, None if tr is None else tr[0], depth,
                                          bool(reverse[i])))
        return _stack(parts)

    return draw


# --- shards (syn2seq prepare) ------------------------------------------------------------------------------
class ShardsSource:
    """Finetune sequences from prepared shards (:mod:`syn2seq_core.data.shards`), mixed over the manifests of
    ``[data] shards`` with ``[data] weights`` (default: in proportion to their sample counts).

    Which sample a sequence gets is a pure function of the run's seed and its global position
    ``p = step * batch_size + index``: the manifest ``k`` is drawn from the sequence's generator (with the
    weights), and the sample is slot ``p mod N_k`` of manifest ``k``'s permutation of epoch ``p // N_k``
    (``N_k`` samples; a permutation seeded by (seed, k, epoch)). So a run (or a resumed run, or the same run on
    another number of processes) reads the same samples at the same step; distinct positions inside one
    block of ``N_k`` positions never share a sample, so the processes of a step read disjoint samples. The rest
    (direction, window, noise levels, context) is :func:`triplet_sequence`, as for the procedural world.

    ``source(generators, positions)`` -> TrainingBatch (one sequence per generator, what the trainer does);
    ``source(generator, batch)``: ``batch`` sequences at positions drawn from the generator (previews, tests).
    :attr:`last_ids` holds the sample ids of the last call.
    """

    positional = True

    def __init__(self, cfg):
        from ..data.shards import SampleReader, read_manifest

        data = cfg.data
        self.cfg, self.data, self.net = cfg, data, network_config(cfg)  # stage "finetune": train.check_config
        self.readers = []
        for path in data.shards:
            manifest = read_manifest(path)
            self._check(manifest, str(path))
            self.readers.append(SampleReader(manifest))
        sizes = [len(r) for r in self.readers]
        weights = list(data.weights) if data.weights else [float(n) for n in sizes]
        total = float(sum(weights))
        self.cumulative = torch.tensor(weights, dtype=torch.float64).cumsum(0) / total
        self.sizes = sizes
        self._perms: dict[tuple[int, int], Tensor] = {}
        self.last_ids: list[str] = []

    def _check(self, manifest, where: str) -> None:
        s, data = manifest.settings, self.data
        need = {"size": data.size, "exo_frames": data.exo_frames, "ego_frames": data.ego_frames}
        if data.transition != "none":
            need["transition_frames"] = data.transition_frames
        for key, value in need.items():
            require(s.get(key) == value, f"[data] shards {where}", f"samples with {key} = {value} (as [data] {key})",
                    f"{key} = {s.get(key)}", "Prepare shards with the training config's sizes (syn2seq prepare "
                    "--size --exo-frames --ego-frames --transition-frames)")
        if data.ego2exo_prob > 0 and data.transition != "none":
            require(s.get("both_directions"), f"[data] shards {where}", "ego -> exo transitions for [data] "
                    "ego2exo_prob > 0", "exo -> ego only", "Prepare with syn2seq prepare --both-directions")
        if self.net.cue != "none":
            require(s.get("depth"), f"[data] shards {where}", f"depth for the model's {self.net.cue} cue",
                    "shards prepared without depth", "Prepare with --depth from takes that have it")

    def permutation(self, k: int, epoch: int) -> Tensor:
        from .seeds import sequence_seed

        key = (k, epoch)
        if key not in self._perms:
            if len(self._perms) > 2 * len(self.readers):
                self._perms.clear()
            g = torch.Generator().manual_seed(sequence_seed(self.cfg.seed, epoch, 1_000_000 + k))
            self._perms[key] = torch.randperm(self.sizes[k], generator=g)
        return self._perms[key]

    def choose(self, g: torch.Generator, position: int) -> tuple[int, int]:
        """(manifest, sample) of the sequence at global ``position`` whose generator is ``g`` (one draw)."""
        u = float(torch.rand((), generator=g, dtype=torch.float64))
        k = min(int(torch.searchsorted(self.cumulative, torch.tensor(u, dtype=torch.float64), right=True)),
                len(self.readers) - 1)
        n = self.sizes[k]
        return k, int(self.permutation(k, position // n)[position % n])

    def sequence(self, g: torch.Generator, position: int):
        k, j = self.choose(g, position)
        sample = self.readers[k][j]
        data = self.data
        reverse = bool(_uniform(g, 1) < data.ego2exo_prob)
        if data.transition == "none" or data.transition_frames == 0:
            tr = None
        else:
            tr = sample.ego2exo if reverse else sample.transition
        depth = (sample.ego_depth if reverse else sample.exo_depth) if self.net.cue != "none" else None
        part = triplet_sequence(data, self.net, g, sample.exo_cameras, sample.ego_cameras, sample.exo, sample.ego, tr,
                                depth, reverse)
        return part, f"{self.readers[k].manifest.path.parent.name}:{sample.id}"

    def __call__(self, g, positions=None) -> TrainingBatch:
        if isinstance(g, (list, tuple)):
            require(positions is not None and len(positions) == len(g), "positions", "one per generator", positions)
            pairs = [self.sequence(one, int(p)) for one, p in zip(g, positions)]
        else:
            pairs = [self.sequence(g, int(torch.randint(0, 2**62, (), generator=g))) for _ in range(positions)]
        self.last_ids = [pid for _, pid in pairs]
        return _stack([part for part, _ in pairs])


def draw_share(cfg, source, step: int, first: int, count: int, pose_rate: float):
    """Sequences ``first .. first + count - 1`` of the global batch of ``step``, on the CPU: (batch, noise
    [count, T, C, H, W], pose-dropout mask [count]), every sequence drawn from its own generator
    (:func:`~syn2seq_core.training.seeds.sequence_seed`), so a sequence does not depend on which process draws it."""
    from ..dfot.sampler import randn
    from .seeds import sequence_seed

    gens = [torch.Generator().manual_seed(sequence_seed(cfg.seed, step, i)) for i in range(first, first + count)]
    if getattr(source, "positional", False):
        batch = source(gens, [step * cfg.optim.batch_size + i for i in range(first, first + count)])
    else:
        batch = source(gens)
    noise = torch.stack([randn(batch.frames.shape[1:], g, "cpu", torch.float32) for g in gens])
    pose_drop = torch.stack([torch.rand((), generator=g) < pose_rate for g in gens])
    return batch, noise, pose_drop


class StepDataset(torch.utils.data.Dataset):
    """Item ``step``: this process's share of the global batch of ``step`` (:func:`draw_share`) as
    ``(step, batch, noise, pose_drop, sample ids)``; a pure function of (config, step, rank), so a
    DataLoader over ``range(start, stop)`` with any number of workers yields the same items in order."""

    def __init__(self, cfg, source, rank: int, world: int, pose_rate: float):
        self.cfg, self.source, self.rank, self.world, self.pose_rate = cfg, source, rank, world, pose_rate

    def __len__(self) -> int:
        return self.cfg.max_steps

    def __getitem__(self, step: int):
        per_rank = self.cfg.optim.batch_size // self.world
        batch, noise, pose_drop = draw_share(self.cfg, self.source, step, self.rank * per_rank, per_rank,
                                             self.pose_rate)
        return step, batch, noise, pose_drop, list(getattr(self.source, "last_ids", []))


def _no_collate(item):
    return item


def step_loader(cfg, source, start: int, stop: int, *, rank: int = 0, world: int = 1, pose_rate: float = 0.0,
                workers: int | None = None):
    """A DataLoader yielding ``(step, batch, noise, pose_drop, ids)`` for steps ``start .. stop - 1`` in order,
    decoded in ``workers`` processes (default ``[data] loader_workers``; 0: in this process)."""
    workers = cfg.data.loader_workers if workers is None else workers
    dataset = StepDataset(cfg, source, rank, world, pose_rate)
    extra = {"prefetch_factor": 4, "persistent_workers": False} if workers else {}
    return torch.utils.data.DataLoader(dataset, batch_size=None, sampler=range(start, stop), num_workers=workers,
                                       collate_fn=_no_collate, **extra)


def batch_source(cfg, heldout: bool = False) -> Callable[..., TrainingBatch]:
    """The batch function of a training config's stage: ``draw(generator, batch_size) -> TrainingBatch``, or
    ``draw([generator, ...])``: one sequence per generator, each drawn from its own (what the training loop
    does, so that a sequence does not depend on how many processes share the batch); ``heldout``: scenes of
    the held-out seeds (at or above ``HELDOUT_SEED_BASE``), never trained on. With ``[data] shards`` it is a
    :class:`ShardsSource` (a manifest has no held-out split: ``heldout`` draws training samples too)."""
    if cfg.data.shards:
        return ShardsSource(cfg)
    draw = pretrain_source(cfg, heldout) if cfg.stage == "pretrain" else finetune_source(cfg, heldout)

    def source(g, batch: int | None = None) -> TrainingBatch:
        if isinstance(g, (list, tuple)):
            return TrainingBatch.cat([draw(one, 1) for one in g])
        return draw(g, batch)

    return source
