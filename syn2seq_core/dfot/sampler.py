"""The diffusion-forcing sampler: DDIM over a scheduling matrix, with clean context and history guidance.

Pure functions. The network enters as a ``denoiser`` with the protocol::

    denoiser(x_t: [B, T, C, H, W], logsnr: [B, T], rays: [B, T, H, W, R] | None) -> v: [B, T, C, H, W]

``x_t`` is in model space (whatever the model wrapper normalises frames to), ``logsnr`` is the noise level
of each frame (the network scales it itself) and ``rays=None`` means "no pose" (the unconditional branch
of history guidance). The denoiser may be called with a larger batch than the sample's: guidance branches
are stacked along the batch axis, branch-major (``(branch b)``). Branches that keep the rays and branches
that drop them need separate calls, unless the denoiser also accepts a keyword ``pose_mask: [B] bool``
(True = no pose for that sample, as ``DiT3D.forward``): then every step is a single call. A denoiser that accepts
a keyword ``cache`` gets one dict per :func:`sample` call, in which it may keep what depends only on the rays
(they do not change during a call; the sampler passes the very same rays tensor every step), and one that accepts
a keyword ``needed`` ([B, T] bool) is told which frames' output the step reads (the frames still being denoised;
the others may come back as anything finite, e.g. zeros). Before the first step the sampler puts every noise level
it will feed in the run's dict, ``cache["noise_levels"]`` ([K] float32 logSNR, on the state's device), so that a
denoiser can compute what depends only on the level once per run (the U-ViT's per-frame FiLM).

Context mask codes (``conventions.MASK_*``): ``1`` given context and ``2`` generated context are kept
clean, fed to the denoiser at the cleanest level (``t = 0``) and never modified (bit-identical in the
output); ``-1`` padding frames are fed as pure noise at ``t = 1``, never updated, and returned as zeros;
``0`` frames are generated.

Cancellation and progress: ``callback(info)`` is called after every step with ``{"step": i, "total": n,
"x0": current clean estimate [B, T, C, H, W], "generate": [B, T] bool, the frames this call generates}`` (``i``
from 1 to ``n``). An exception raised inside the
callback propagates out of the sampler unchanged, which is how a caller cancels a run.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterator, Sequence

import torch
from einops import repeat
from torch import Tensor

from ..base.conventions import MASK_CONTEXT, MASK_GENERATE, MASK_GENERATED_CONTEXT, MASK_PADDING
from ..base.errors import Syn2SeqInputError, require
from .guidance import Branch, HistoryGuidance
from .schedule import NOISE_CLIP, NoiseSchedule, alpha_sigma, expand_like
from .scheduling import validate_scheduling_matrix
from .scheduling import scheduling_matrix as build_matrix

Denoiser = Callable[[Tensor, Tensor, "Tensor | None"], Tensor]
Callback = Callable[[dict], None]
MASK_CODES = (MASK_PADDING, MASK_GENERATE, MASK_CONTEXT, MASK_GENERATED_CONTEXT)


def randn(shape: Sequence[int], generator: torch.Generator | None, device, dtype) -> Tensor:
    """Standard normal noise clipped to +-NOISE_CLIP, drawn from ``generator`` (on its own device)."""
    if generator is None:
        z = torch.randn(tuple(shape), device=device, dtype=dtype)
    else:
        z = torch.randn(tuple(shape), generator=generator, device=generator.device, dtype=dtype).to(device)
    return z.clamp_(-NOISE_CLIP, NOISE_CLIP)


def _resolve_mask(context_mask, batch: int, frames: int) -> Tensor:
    if context_mask is None:
        return torch.zeros(batch, frames, dtype=torch.long)
    mask = torch.as_tensor(context_mask).detach().cpu()
    require(not mask.is_floating_point(), "context_mask", "an integer tensor", mask.dtype)
    if mask.ndim == 1:
        mask = mask.expand(batch, -1)
    require(tuple(mask.shape) == (batch, frames), "context_mask", f"shape [{batch}, {frames}] (or [{frames}])",
            tuple(mask.shape))
    bad = ~torch.isin(mask, torch.tensor(MASK_CODES))
    if bool(bad.any()):
        raise Syn2SeqInputError("context_mask", f"codes in {list(MASK_CODES)}", sorted(set(mask[bad].tolist())))
    return mask.long()


def _resolve_times(matrix: Tensor, batch: int, frames: int, schedule: NoiseSchedule) -> Tensor:
    """Matrix [R, T] or [R, B, T] of levels (mapped by ``schedule``'s time grid) or times -> float64 CPU times
    [R, B, T]."""
    validate_scheduling_matrix(matrix, frames)
    matrix = matrix.detach().cpu()
    times = matrix.to(torch.float64) if matrix.is_floating_point() else schedule.level_times(matrix)
    if times.ndim == 2:
        times = times.unsqueeze(1).expand(-1, batch, -1)
    require(times.shape[1] == batch, "scheduling_matrix", f"batch axis of size {batch}", tuple(matrix.shape))
    return times.clone()


def active_steps(times: Tensor) -> list[int]:
    """Rows ``m`` of a matrix ``[R, ...]`` after which something changes: the steps that need a denoiser call."""
    changed = (times[1:] != times[:-1]).reshape(times.shape[0] - 1, -1).any(dim=1)
    return changed.nonzero().flatten().tolist()


def accepts_keyword(denoiser, name: str) -> bool:
    """Whether ``denoiser`` takes the keyword ``name`` (named in its signature, or its ``forward``'s for a
    ``torch.nn.Module``; ``**kwargs`` does not count)."""
    if isinstance(denoiser, torch.nn.Module):
        denoiser = denoiser.forward
    try:
        return name in inspect.signature(denoiser).parameters
    except (TypeError, ValueError):
        return False


def accepts_pose_mask(denoiser) -> bool:
    """Whether ``denoiser`` takes a ``pose_mask`` keyword ([B] bool, True = drop the pose of that sample)."""
    return accepts_keyword(denoiser, "pose_mask")


def _memo(cache: dict | None, key, make):
    """``make()``, kept in ``cache`` under ``key`` (a sampling run's dict) when there is one."""
    if cache is None:
        return make()
    if key not in cache:
        cache[key] = make()
    return cache[key]


def _to_device(a: Tensor, like: Tensor) -> Tensor:
    return a.to(device=like.device, dtype=like.dtype)


def guided_v(
    denoiser: Denoiser,
    x: Tensor,
    t: Tensor,
    mask: Tensor,
    branches: Sequence[Branch],
    *,
    schedule: NoiseSchedule,
    rays: Tensor | None = None,
    stabilization: float = 0.0,
    generator: torch.Generator | None = None,
    cache: dict | None = None,
    needed: Tensor | None = None,
) -> Tensor:
    """One guided ``v`` prediction.

    x: [B, T, C, H, W] current state; t: [B, T] float64 noise time of each frame (history frames at 0,
    padding at 1); mask: [B, T] context-mask codes (``>= 1`` = history). Each branch shows the history at
    its own noise time (noised with fresh noise from ``generator``); branches that keep the rays share one
    denoiser call, branches that drop them share another (one call for all when the denoiser takes
    ``pose_mask``). Returns the weighted sum of the branches' ``v``. cache: a dict kept for calls with the same
    ``rays`` and branches (:func:`sample` keeps one per call): the branch-stacked rays and pose masks are built
    once, and a denoiser that takes ``cache`` gets it. needed: [B, T] bool, the frames whose ``v`` the caller reads,
    passed on (per branch) to a denoiser that takes ``needed``; None = all.
    """
    history = mask >= MASK_CONTEXT
    generated_history = mask == MASK_GENERATED_CONTEXT
    inputs: list[tuple[Tensor, Tensor]] = []
    for branch in branches:
        ht = torch.full_like(t, branch.history_t)
        if stabilization > 0:
            ht = torch.where(generated_history, ht.clamp(min=stabilization), ht)
        noised = history & (ht > 0)
        frame_t = torch.where(history, ht, t)
        logsnr = schedule.logsnr(frame_t)
        x_b = x
        if bool(noised.any()):
            a, s = alpha_sigma(logsnr)
            a, s = (expand_like(_to_device(c, x), x) for c in (a, s))
            z = randn(x.shape, generator, x.device, x.dtype)
            x_b = torch.where(expand_like(noised.to(x.device), x), a * x + s * z, x)
        inputs.append((x_b, logsnr.to(device=x.device, dtype=torch.float32)))

    outputs: list[Tensor | None] = [None] * len(branches)
    mixed = rays is not None and len({b.pose for b in branches}) > 1
    takes_pose_mask, takes_cache, takes_needed = _memo(cache, "accepts", lambda: (
        accepts_pose_mask(denoiser), accepts_keyword(denoiser, "cache"), accepts_keyword(denoiser, "needed")))
    use_pose_mask = mixed and takes_pose_mask
    extra = {"cache": cache} if takes_cache and cache is not None else {}
    if not takes_needed or (needed is not None and bool(needed.all())):
        needed = None
    groups: dict[bool, list[int]] = {}
    for i, branch in enumerate(branches):
        groups.setdefault(use_pose_mask or (branch.pose and rays is not None), []).append(i)
    for with_rays, members in groups.items():
        if len(members) == 1:
            xs, logsnrs = inputs[members[0]]
        else:
            xs = torch.cat([inputs[i][0] for i in members])
            logsnrs = torch.cat([inputs[i][1] for i in members])
        call_rays = None
        if with_rays:  # the same tensor every step (a denoiser may key its cache on it)
            k = len(members)
            call_rays = rays if k == 1 else _memo(cache, ("rays", k), lambda k=k: repeat(rays, "b ... -> (k b) ...", k=k))
        call = dict(extra)
        if needed is not None:
            call["needed"] = repeat(needed.to(x.device), "b t -> (k b) t", k=len(members))
        if use_pose_mask:
            drop = tuple(not branches[i].pose for i in members)
            call["pose_mask"] = _memo(cache, ("pose_mask", drop), lambda d=drop: repeat(
                torch.tensor(d, device=x.device), "k -> (k b)", b=x.shape[0]))
        v = denoiser(xs, logsnrs, call_rays, **call)
        require(isinstance(v, Tensor) and tuple(v.shape) == tuple(xs.shape), "denoiser output",
                f"a tensor of shape {tuple(xs.shape)}", tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__)
        for i, v_i in zip(members, v.to(x.dtype).chunk(len(members))):
            outputs[i] = v_i
    if len(branches) == 1 and branches[0].weight == 1.0:
        return outputs[0]
    return sum(branch.weight * v_i for branch, v_i in zip(branches, outputs))


def run_noise_levels(times: Tensor, branches: Sequence[Branch], stabilization: float,
                     schedule: NoiseSchedule) -> Tensor:
    """Every logSNR :func:`guided_v` feeds the denoiser over a run whose steps start at ``times`` (float64 [n, B, T]):
    the frames' own times and each branch's history time (raised to ``stabilization`` for generated history), as
    sorted unique float32 [K]."""
    extra = [b.history_t for b in branches] + [max(b.history_t, stabilization) for b in branches if stabilization > 0]
    t = torch.cat([times.flatten(), torch.tensor(extra, dtype=torch.float64)]).unique()
    return schedule.logsnr(t).to(torch.float32).unique()


def ddim_coefficients(t_cur: Tensor, t_next: Tensor, schedule: NoiseSchedule, eta: float = 0.0):
    """DDIM step from noise time ``t_cur`` to ``t_next`` (``t_next = 0`` lands exactly on the clean estimate).

    t_cur, t_next: [...] float64 -> (alpha_s, sigma_s, alpha_t, c_eps, c_noise), each [...]:
    ``x0 = alpha_s x - sigma_s v``, ``eps = sigma_s x + alpha_s v``,
    ``x_next = alpha_t x0 + c_eps eps + c_noise z``, with ``c_noise = eta sigma_t / sigma_s sqrt(1 - alpha_s^2 /
    alpha_t^2)`` (DDIM's stochasticity; eta = 1 is ancestral DDPM) and ``c_eps = sqrt(sigma_t^2 - c_noise^2)``.
    """
    a_s, s_s = alpha_sigma(schedule.logsnr(t_cur))
    a_t, s_t = alpha_sigma(schedule.logsnr(t_next))
    clean = t_next == 0
    a_t = torch.where(clean, torch.ones_like(a_t), a_t)
    s_t = torch.where(clean, torch.zeros_like(s_t), s_t)
    if eta > 0:
        c_noise = eta * s_t / s_s * (1 - (a_s / a_t) ** 2).clamp(min=0).sqrt()
    else:
        c_noise = torch.zeros_like(s_t)
    c_eps = (s_t**2 - c_noise**2).clamp(min=0).sqrt()
    return a_s, s_s, a_t, c_eps, c_noise


@torch.no_grad()
def sample(
    denoiser: Denoiser,
    x: Tensor | Sequence[int],
    scheduling_matrix: Tensor,
    *,
    schedule: NoiseSchedule | None = None,
    context: Tensor | None = None,
    context_mask: Tensor | None = None,
    rays: Tensor | None = None,
    guidance: HistoryGuidance | None = None,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """Sample a window of frames with per-frame noise levels. Returns the clean frames x0 [B, T, C, H, W].

    x: the state at the levels of the matrix's first row, [B, T, C, H, W] (pure noise for a fresh sample),
    or its shape, in which case the noise is drawn from ``generator`` (on the device of ``context`` when
    given, else on the generator's device). The state is kept in at least float32 whatever the input dtype
    (the denoiser may run in lower precision inside), and the result has that dtype.
    scheduling_matrix: [R, T] or [R, B, T]; integer levels in [0, S] (``S`` the largest level; mapped to times
    by ``schedule``'s time grid, ``t = level / S`` on the uniform one) or float noise times in [0, 1]; see
    :mod:`.scheduling`. Each row transition is one DDIM
    step; frames whose level does not change stay put, and steps in which no frame changes are skipped.
    context: [B, T, C, H, W] clean frames, read where ``context_mask >= 1``; context_mask: [B, T] or [T]
    codes -1/0/1/2 (default: all 0). rays: [B, T, H, W, R] per-frame camera rays or None.
    guidance: a :class:`HistoryGuidance` or its name (default ``conditional``). eta: DDIM stochasticity (0 = deterministic).
    generator: the source of all noise. callback: see the module docstring; it may raise to cancel.
    Runs under ``torch.no_grad()``.
    """
    schedule = schedule or NoiseSchedule()
    guidance = HistoryGuidance(guidance) if isinstance(guidance, str) else (guidance or HistoryGuidance())
    require(math.isfinite(eta) and eta >= 0, "eta", "a number >= 0", eta)

    if isinstance(x, Tensor):
        shape = tuple(x.shape)
    else:
        shape = tuple(int(s) for s in x)
    require(len(shape) == 5, "x", "a tensor or shape [B, T, C, H, W]", shape)
    batch, frames = shape[:2]
    mask_cpu = _resolve_mask(context_mask, batch, frames)
    needs_context = bool((mask_cpu >= MASK_CONTEXT).any())
    if needs_context:
        require(context is not None, "context", "a tensor [B, T, C, H, W] (context_mask marks context frames)", None)
    if context is not None:
        require(tuple(context.shape) == shape, "context", f"shape {list(shape)}", tuple(context.shape))
    if rays is not None:
        require(tuple(rays.shape[:2]) == (batch, frames), "rays", f"shape [{batch}, {frames}, H, W, R]",
                tuple(rays.shape))

    if isinstance(x, Tensor):
        state = x.to(torch.promote_types(x.dtype, torch.float32))
    else:
        device = context.device if context is not None else (generator.device if generator is not None else "cpu")
        dtype = torch.promote_types(context.dtype, torch.float32) if context is not None else torch.float32
        state = randn(shape, generator, device, dtype)
    mask = mask_cpu.to(state.device)
    keep = expand_like(mask >= MASK_CONTEXT, state)
    if needs_context:
        state = torch.where(keep, context.to(device=state.device, dtype=state.dtype), state)

    times = _resolve_times(scheduling_matrix, batch, frames, schedule)
    times[:, mask_cpu >= MASK_CONTEXT] = 0.0
    times[:, mask_cpu == MASK_PADDING] = 1.0
    steps = active_steps(times)
    branches = guidance.branches()
    generate = mask_cpu == MASK_GENERATE
    # Everything a step needs that does not depend on the state, for all steps at once, moved to the device once:
    # the DDIM coefficients [5, n, B, T] and which frames each step updates / is still denoising [n, B, T].
    t_cur_all, t_next_all = times[steps], times[[m + 1 for m in steps]]
    coefficients = _to_device(torch.stack(ddim_coefficients(t_cur_all, t_next_all, schedule, eta)), state)
    updates = (generate & (t_cur_all != t_next_all)).to(state.device)
    busies = (generate & (t_cur_all > 0)).to(state.device)
    cache: dict = {}  # what stays the same for the whole run (rays stacked per branch; the denoiser's own)
    cache["noise_levels"] = run_noise_levels(t_cur_all, branches, guidance.stabilization, schedule).to(state.device)

    for i, m in enumerate(steps):
        t_cur = times[m]
        # Generated frames that are already clean act as generated history for the rest of the run.
        step_mask = torch.where(generate & (t_cur == 0), MASK_GENERATED_CONTEXT, mask_cpu)
        # The step reads v of the frames still being denoised (``busies``: updated now, or shown by the callback).
        v = guided_v(denoiser, state, t_cur, step_mask, branches, schedule=schedule, rays=rays,
                     stabilization=guidance.stabilization, generator=generator, cache=cache, needed=busies[i])
        a_s, s_s, a_t, c_eps, c_noise = (expand_like(c, state) for c in coefficients[:, i])
        x0 = a_s * state - s_s * v
        eps = s_s * state + a_s * v
        new = a_t * x0 + c_eps * eps
        if eta > 0:
            new = new + c_noise * randn(shape, generator, state.device, state.dtype)
        state = torch.where(expand_like(updates[i], state), new, state)
        if callback is not None:
            busy = expand_like(busies[i], state)
            callback({"step": i + 1, "total": len(steps), "x0": torch.where(busy, x0, state), "generate": generate})

    return torch.where(expand_like(mask == MASK_PADDING, state), torch.zeros_like(state), state)


def plan_windows(known: Sequence[bool], window: int, context_frames: int) -> list[tuple[int, int, list[int]]]:
    """Windows of a sliding rollout: ``[(start, end, generated_indices), ...]`` over a sequence.

    known: [L] which frames are context. Each window starts up to ``context_frames`` frames before the
    first unknown frame, spans ``window`` frames (less only when the sequence is shorter) and generates
    every unknown frame inside it.
    """
    known = [bool(k) for k in known]
    length = len(known)
    plan = []
    while not all(known):
        first = known.index(False)
        start = max(0, first - context_frames)
        end = min(length, start + window)
        start = max(0, end - window)
        generated = [i for i in range(start, end) if not known[i]]
        for i in generated:
            known[i] = True
        plan.append((start, end, generated))
    return plan


def rollout(
    denoiser: Denoiser,
    context: Tensor,
    context_mask: Tensor,
    *,
    window: int,
    steps: int = 50,
    scheduling: str = "full_sequence",
    scheduling_options: dict | None = None,
    context_frames: int | None = None,
    schedule: NoiseSchedule | None = None,
    rays: Tensor | Callable[[int, int], Tensor] | None = None,
    guidance: HistoryGuidance | None = None,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """Generate a sequence longer than the model's window, window by window. Returns [B, L, C, H, W].

    context: [B, L, C, H, W] (read where the mask is >= 1); the other arguments as :func:`rollout_stream`,
    which this collects into one tensor (``rollout_stream`` keeps memory bounded for long sequences).
    """
    require(context.ndim == 5, "context", "shape [B, L, C, H, W]", tuple(context.shape))
    batch, length = context.shape[:2]
    out = context.clone()
    for generated, x0 in rollout_stream(denoiser, lambda start, end: context[:, start:end], context_mask,
                                        frame_shape=tuple(context.shape[2:]), batch=batch, window=window,
                                        steps=steps, scheduling=scheduling, scheduling_options=scheduling_options,
                                        context_frames=context_frames, schedule=schedule, rays=rays,
                                        guidance=guidance, eta=eta, generator=generator, callback=callback):
        out[:, generated] = x0
    return out


def rollout_stream(
    denoiser: Denoiser,
    read_context: Callable[[int, int], Tensor],
    context_mask: Tensor,
    *,
    frame_shape: tuple[int, int, int],
    batch: int = 1,
    window: int,
    steps: int = 50,
    scheduling: str = "full_sequence",
    scheduling_options: dict | None = None,
    context_frames: int | None = None,
    schedule: NoiseSchedule | None = None,
    rays: Tensor | Callable[[int, int], Tensor] | None = None,
    guidance: HistoryGuidance | None = None,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> Iterator[tuple[list[int], Tensor]]:
    """A rollout that yields frames as they are generated: ``(indices, x0 [B, len(indices), C, H, W])`` per
    window, indices increasing. Memory is bounded by one window: known frames are read only for the window
    that needs them, and a generated frame is kept only while a later window still reads it.

    read_context(start, end): [B, end - start, C, H, W], the known frames of ``[start, end)`` (values where the
    mask is 0 are ignored). context_mask: [B, L] or [L], codes 0/1/2, the same for every sample of the batch;
    frame_shape: (C, H, W). Each window holds ``window`` frames: up to ``context_frames`` (default
    ``window // 2``) known frames before the first unknown one, then the frames to generate (known frames
    further on stay context). Generated frames become generated context (mask 2) for later windows. Each
    window uses the registered matrix ``scheduling`` over its generated frames.
    rays: [B, L, H, W, R] sliced per window, or a function ``(start, end) -> [B, end - start, H, W, R]``
    (e.g. to express the window's rays relative to its own first camera), or None.
    callback: as :func:`sample`, with ``step``/``total`` counted over the whole rollout and ``window``,
    ``windows`` added; ``x0`` is the current window's estimate.
    """
    require(isinstance(window, int) and window >= 1, "window", "an integer >= 1", window)
    context_frames = window // 2 if context_frames is None else context_frames
    require(isinstance(context_frames, int) and 0 <= context_frames < window, "context_frames",
            f"an integer in [0, {window - 1}]", context_frames)
    length = context_mask.shape[-1]
    mask = _resolve_mask(context_mask, batch, length)
    require(bool((mask == mask[0]).all()), "context_mask", "the same mask for every sample of the batch",
            "masks that differ")
    require(bool((mask >= MASK_GENERATE).all()), "context_mask", "codes 0/1/2 (rollout has no padding)",
            sorted(set(mask.flatten().tolist())))
    if isinstance(rays, Tensor):
        require(tuple(rays.shape[:2]) == (batch, length), "rays", f"shape [{batch}, {length}, H, W, R]",
                tuple(rays.shape))

    plan = plan_windows((mask[0] >= MASK_CONTEXT).tolist(), window, context_frames)
    matrices = []
    for start, end, generated in plan:
        levels = build_matrix(scheduling, steps, len(generated), **(scheduling_options or {}))
        full = torch.zeros(levels.shape[0], end - start, dtype=levels.dtype)
        full[:, [i - start for i in generated]] = levels
        matrices.append(full)
    total = sum(len(active_steps(m)) for m in matrices)
    return _rollout_windows(denoiser, read_context, mask.clone(), plan, matrices, total, frame_shape, batch,
                            schedule, rays, guidance, eta, generator, callback)


def _rollout_windows(denoiser, read_context, mask, plan, matrices, total, frame_shape, batch, schedule, rays,
                     guidance, eta, generator, callback) -> Iterator[tuple[list[int], Tensor]]:
    kept: dict[int, Tensor] = {}  # generated frames a later window still reads: index -> [B, C, H, W]
    done = 0
    for k, ((start, end, generated), matrix) in enumerate(zip(plan, matrices)):
        window_rays = None
        if callable(rays):
            window_rays = rays(start, end)
        elif rays is not None:
            window_rays = rays[:, start:end]
        window_callback = None
        if callback is not None:
            def window_callback(info, _done=done, _k=k):
                callback({**info, "step": _done + info["step"], "total": total, "window": _k, "windows": len(plan)})
        ctx = read_context(start, end)
        require(tuple(ctx.shape) == (batch, end - start, *frame_shape), "read_context",
                f"frames of shape {(batch, end - start, *frame_shape)}", tuple(ctx.shape))
        ctx = ctx.clone()
        for i in range(start, end):
            if i in kept:
                ctx[:, i - start] = kept[i]
        x0 = sample(denoiser, (batch, end - start, *frame_shape), matrix, schedule=schedule,
                    context=ctx, context_mask=mask[:, start:end], rays=window_rays,
                    guidance=guidance, eta=eta, generator=generator, callback=window_callback)
        local = [i - start for i in generated]
        for i in generated:
            kept[i] = x0[:, i - start]
        mask[:, generated] = MASK_GENERATED_CONTEXT
        done += len(active_steps(matrix))
        next_start = plan[k + 1][0] if k + 1 < len(plan) else end
        for i in [i for i in kept if i < next_start]:
            del kept[i]
        yield generated, x0[:, local]
