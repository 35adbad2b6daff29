"""Image(s) -> video along a camera path, with any DFoT-family model (DFoT's own task on RealEstate10K).

The given images are clean context at their frames of the camera track; every other frame is generated,
conditioned on the whole track as rays. Two ways through long tracks, both DFoT's:

``sliding``    the model's window slides along the track; each window sees the frames just before it (given
               or generated) and every given image inside it (:meth:`Syn2SeqModel.generate_stream`).
``keyframes``  first the keyframes, ``round(keyframe_density * N)`` frames spread evenly over the track (DFoT's
               ``keyframe_density``; the given frames stay given), generated as a short sequence of their own;
               then the frames between them, every window holding known keyframes on both sides: the model
               interpolates instead of extrapolating, so long videos drift less.

``stabilization`` (the sampler's) shows generated history to later windows slightly noised, for long rollouts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ..base import conventions as C
from ..base.errors import require
from ..geometry.cameras import Cameras
from .sequence import Syn2SeqSequence

MODES = ("sliding", "keyframes")
DEFAULT_KEYFRAME_DENSITY = 0.0625  # DFoT's default: one keyframe in 16


def fit_image(image: Tensor, width: int, height: int) -> Tensor:
    """[3, h, w] -> [3, height, width]: resized to cover, then centre-cropped (as takes and cameras are)."""
    from ..io.video import resize_plan
    from .pipeline import resize_frames

    plan = resize_plan(image.shape[-1], image.shape[-2], size=(width, height), crop="center")
    resized = resize_frames(image[None], plan.resize_h, plan.resize_w)[0]
    return resized[:, plan.top:plan.top + plan.height, plan.left:plan.left + plan.width].contiguous()


def image_sequence(images: Tensor, cameras: Cameras, image_frames: list[int] | None = None) -> Syn2SeqSequence:
    """A single-view sequence over ``cameras`` (N) with ``images`` [K, 3, H, W] (the cameras' size) as clean
    context at ``image_frames`` (default the first K frames; negative indices count from the end)."""
    require(isinstance(images, Tensor) and images.ndim == 4 and images.shape[1] == 3, "images",
            "a tensor [K, 3, H, W]", tuple(getattr(images, "shape", ())))
    require(isinstance(cameras, Cameras) and len(cameras) >= 1, "cameras", "a camera track", type(cameras).__name__)
    n, k = len(cameras), images.shape[0]
    require(tuple(images.shape[-2:]) == (cameras.height, cameras.width), "images",
            f"frames of {cameras.width}x{cameras.height} (the cameras' size)",
            f"{images.shape[-1]}x{images.shape[-2]}", "Fit the images and cameras to the model's size first")
    frames_at = list(range(k)) if image_frames is None else [int(i) for i in image_frames]
    require(len(frames_at) == k, "image_frames", f"one frame index per image ({k})", frames_at)
    resolved = [i % n if -n <= i < n else None for i in frames_at]
    require(None not in resolved, "image_frames", f"indices in [-{n}, {n - 1}] (the camera track)", frames_at)
    require(len(set(resolved)) == k, "image_frames", "distinct frames", frames_at)
    require(k < n, "cameras", f"more cameras than images ({k}): frames to generate", f"{n} cameras")
    frames = torch.zeros(n, 3, cameras.height, cameras.width, dtype=images.dtype)
    mask = torch.full((n,), C.MASK_GENERATE, dtype=torch.long)
    for image, i in zip(images, resolved):
        frames[i] = image
        mask[i] = C.MASK_CONTEXT
    return Syn2SeqSequence(frames=frames, known=mask == C.MASK_CONTEXT, cameras=cameras,
                           pose_known=torch.ones(n, dtype=torch.bool), roles=torch.full((n,), C.ROLE_EXO),
                           context_mask=mask, direction="exo2ego", mode="direct")


def keyframe_indices(n: int, density: float, given: list[int]) -> list[int]:
    """DFoT's keyframes: ``round(density * n)`` frames at ``long(linspace(0, n - 1, ...))``, plus the given ones."""
    require(0 < density <= 1, "keyframe_density", "a share of the frames in (0, 1]", density)
    count = max(2, round(density * n))
    spread = torch.linspace(0, n - 1, count).long().tolist()
    return sorted(set(spread) | set(given))


@dataclass(frozen=True)
class Pass:
    """One generation pass: which frames it generates (the order of generation, for progress and tests)."""

    name: str
    frames: list[int]


def plan(sequence: Syn2SeqSequence, mode: str, keyframe_density: float = DEFAULT_KEYFRAME_DENSITY) -> list[Pass]:
    """The passes of ``mode`` over ``sequence``: [sliding] or [keyframes, in-between]."""
    require(mode in MODES, "mode", f"one of {list(MODES)}", repr(mode))
    given = torch.nonzero(sequence.context_mask >= C.MASK_CONTEXT).flatten().tolist()
    todo = [i for i in range(len(sequence)) if i not in given]
    if mode == "sliding":
        return [Pass("sliding", todo)]
    keys = [i for i in keyframe_indices(len(sequence), keyframe_density, given) if i not in given]
    rest = [i for i in todo if i not in keys]
    return [p for p in (Pass("keyframes", keys), Pass("in-between", rest)) if p.frames]


def iter_image_to_video(model, sequence: Syn2SeqSequence, *, mode: str = "sliding",
                        keyframe_density: float = DEFAULT_KEYFRAME_DENSITY, callback=None, **sampling
                        ) -> Iterator[tuple[str, list[int], Tensor]]:
    """Generate the frames of ``sequence`` (from :func:`image_sequence`) with ``model``: yields ``(pass name,
    frame indices, frames [n, 3, H, W])`` as they are finished. sampling: steps, scheduling, guidance,
    guidance_scale, stabilization, seed, eta, dtype (as :meth:`Syn2SeqModel.generate_stream`); the passes'
    seeds are ``seed`` and ``seed + 1``. callback(info) per step, with ``pass`` and ``passes`` added."""
    passes = plan(sequence, mode, keyframe_density)
    if model.config.cue != "none" and sequence.cue is None:
        # One view only: nothing to warp from another view. The empty cue is what such a model saw on the
        # single-view clips of its pretraining (and when its conditioning was dropped).
        sequence = sequence.with_empty_cue()
    frames = sequence.frames.clone()
    mask = sequence.context_mask.clone()
    seed = int(sampling.pop("seed", 0))
    for number, step in enumerate(passes):
        if step.name == "keyframes":  # a short sequence of its own: the given frames and the keyframes
            index = sorted(set(torch.nonzero(mask >= C.MASK_CONTEXT).flatten().tolist()) | set(step.frames))
            part = _subsequence(sequence, index, frames, mask)
            local = {j: i for j, i in enumerate(index)}
        else:
            part = _subsequence(sequence, list(range(len(sequence))), frames, mask)
            local = {i: i for i in range(len(sequence))}
        wrapped = None
        if callback is not None:
            def wrapped(info, _n=number):
                callback({**info, "pass": _n, "passes": len(passes)})
        for idx, out in model.generate_stream(part, seed=seed + number, callback=wrapped, **sampling):
            targets = [local[j] for j in idx]
            frames[targets] = out.to(frames.dtype)
            mask[targets] = C.MASK_GENERATED_CONTEXT
            yield step.name, targets, out


def image_to_video(model, sequence: Syn2SeqSequence, **options) -> Tensor:
    """:func:`iter_image_to_video`, collected: all frames [N, 3, H, W] (the given images bit-identical)."""
    frames = sequence.frames.clone()
    for _, index, out in iter_image_to_video(model, sequence, **options):
        frames[index] = out.to(frames.dtype)
    return frames


def _subsequence(sequence: Syn2SeqSequence, index: list[int], frames: Tensor, mask: Tensor) -> Syn2SeqSequence:
    ix = torch.tensor(index, dtype=torch.long)
    sub_mask = mask[ix]
    return Syn2SeqSequence(frames=frames[ix], known=sub_mask >= C.MASK_CONTEXT, cameras=sequence.cameras[ix],
                           pose_known=sequence.pose_known[ix], roles=sequence.roles[ix], context_mask=sub_mask,
                           direction=sequence.direction, mode=sequence.mode,
                           cue=None if sequence.cue is None else sequence.cue[ix])
