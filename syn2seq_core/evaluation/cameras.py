"""Camera accuracy in ``syn2seq eval``: do generated videos move as their camera tracks say?

For every scored method (the model's samples, its conditional mean, the baselines, other systems' videos) and for
the ground truth, the cameras of the first :attr:`CameraEvalSettings.frames` frames of the generated view are
re-estimated from the pixels at the evaluation resolution (structure from motion,
:func:`syn2seq_core.geometry.sfm.estimate_cameras`, or any estimator with its signature) and compared with the
requested track (the take's cameras of that view) by RotErr and TransErr
(:func:`syn2seq_core.geometry.align.camera_accuracy`: relative to the first frame, translations normalised per
track, as CameraCtrl / CamI2V report them).

The same is done for the transitions of the interpolation backends (``flow``, ``rife``, ``blend``; the paper's
future work): ``[last source frame | n interpolated frames | first target frame]`` against the SLERP track
``[last source camera | slerp_poses(...) | first target camera]`` that the model is conditioned on; procedural
takes also score their ``ideal`` transition (the scene rendered along that track), the ground truth of the
transition.

A video whose cameras cannot be recovered (every frame the same to within :data:`FROZEN_TOLERANCE`, as
copy_last's; too few features or registrations; an estimator error) is scored as a static camera: RotErr and
TransErr of the requested motion itself, a large error, never "unavailable" (else a broken system would look better than a weak one). Each entry
says whether it was scored so (``static``: the reason) and how many frames the estimator registered.

Summaries (:func:`summarize_cameras`) give per method / backend the mean over takes with a 95% Student-t interval
and paired differences against the reference method, overall and per category, in the layout of
:func:`syn2seq_core.evaluation.run.summarize` so that :mod:`syn2seq_core.evaluation.reports` renders them as tables.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from ..base.errors import Syn2SeqInputError, check_choice, require

CAMERA_METRICS = ("rot_err", "trans_err")
TRANSITION_BACKENDS = ("flow", "rife", "blend")
IDEAL = "ideal"
STATIC_CAMERA = "static_camera"  # the score of a camera that does not move along the transition track: a reference
TRANSITION_PREFIX = "transition "  # method names of transitions in the tables: "transition flow"
# Estimator failures that mean "no cameras from these pixels" (scored as a static camera); anything else is a bug
# and propagates.
RECOVERY_FAILURES = (Syn2SeqInputError, RuntimeError, TimeoutError)
MIN_REGISTERED = 2
# A video whose every frame is within this mean absolute difference of its first (values in [0, 1]) is frozen: a
# lossy codec leaves a held frame a little noise, which must not make a frozen video look like a moving one.
FROZEN_TOLERANCE = 1.0 / 255
CAMERA_DEFINITION = (
    "Camera accuracy: cameras re-estimated from the pixels at the evaluation size (structure from motion) vs the "
    "requested track, both relative to their first frame; RotErr = sum over frames of the relative-rotation angle "
    "error (radians), TransErr = sum over frames of the distance between relative translations, each track divided by "
    "its largest (CameraCtrl / CamI2V). A video whose cameras are not recovered scores as a static camera.")

# estimator(frames [T, 3, H, W] in [0, 1], *, fov_deg, time_limit_s, mapper) -> an object with ``cameras``
# (Cameras, one per frame) and ``registered`` (bool [T]); raises one of RECOVERY_FAILURES when it cannot.
Estimator = Callable[..., object]


@dataclass(frozen=True)
class CameraEvalSettings:
    """frames: the first N frames of the generated view are re-estimated (CameraCtrl and CamI2V score 16-frame
    clips); transition_frames: interpolated frames between the last source and the first target frame;
    backends: the interpolation backends whose transitions are scored (``ideal`` is added for procedural takes
    with ``ideal``); time_limit_s: per estimate (None: none); mapper: the estimator's mapper."""

    frames: int = 16
    transition_frames: int = 8
    backends: tuple[str, ...] = TRANSITION_BACKENDS
    ideal: bool = True
    time_limit_s: float | None = 120.0
    mapper: str = "global"

    def __post_init__(self):
        from ..interpolation.base import known_interpolators

        require(int(self.frames) == self.frames and self.frames >= 2, "camera frames", "an integer >= 2",
                self.frames)
        require(int(self.transition_frames) == self.transition_frames and self.transition_frames >= 0,
                "camera transition frames", "an integer >= 0", self.transition_frames)
        for b in self.backends:
            check_choice(b, tuple(known_interpolators()), "camera backend")
        require(self.time_limit_s is None or self.time_limit_s > 0, "camera time limit", "a positive number of "
                "seconds or None", self.time_limit_s)
        object.__setattr__(self, "backends", tuple(dict.fromkeys(self.backends)))

    def as_dict(self) -> dict:
        d = asdict(self)
        d["backends"] = list(self.backends)
        return d


# pycolmap threads per estimate: with one, the same frames give the same cameras run after run (a textured take's
# 16 ego frames: identical in 3 runs; with every core, the last centre moved by 4% between runs), so a report and
# its per-take records are reproducible; parallelism comes from scoring takes on several processes.
ESTIMATOR_THREADS = 1


def default_estimator(frames: Tensor, *, fov_deg: float | None = None, time_limit_s: float | None = None,
                      mapper: str = "global"):
    """Structure from motion of the pack (:func:`syn2seq_core.geometry.sfm.estimate_cameras`), single-threaded
    (:data:`ESTIMATOR_THREADS`) and seeded: deterministic."""
    from ..geometry.sfm import estimate_cameras

    return estimate_cameras(frames, fov_deg=fov_deg, mapper=mapper, time_limit_s=time_limit_s,
                            num_threads=ESTIMATOR_THREADS, seed=0)


def horizontal_fov_deg(K: Tensor) -> float:
    """Horizontal field of view (degrees) of normalised intrinsics K [4] (fx / W, fy / H, cx / W, cy / H)."""
    return math.degrees(2.0 * math.atan(0.5 / float(K[0])))


def score_video(frames: Tensor, requested_c2w: Tensor, *, estimator: Estimator | None = None,
                fov_deg: float | None = None, settings: CameraEvalSettings = CameraEvalSettings()) -> dict:
    """RotErr / TransErr of the cameras re-estimated from ``frames`` [T, 3, H, W] against ``requested_c2w``
    [T, 4, 4], with how they were obtained: ``registered`` frames, ``static`` (None, or why the video was scored
    as a static camera), ``seconds``. fov_deg: the known horizontal field of view (None: the estimator's own)."""
    from ..geometry.align import camera_accuracy, static_track

    require(frames.ndim == 4 and frames.shape[1] == 3, "frames", "[T, 3, H, W]", tuple(frames.shape))
    require(len(frames) == len(requested_c2w), "requested_c2w", f"{len(frames)} cameras (one per frame)",
            len(requested_c2w))
    started = time.perf_counter()
    n = len(frames)
    reason, registered, est = None, 0, None
    if n < 2:
        reason = "one frame: no motion to recover"
    elif float((frames - frames[:1]).abs().flatten(1).mean(1).max()) < FROZEN_TOLERANCE:
        reason = "frozen video: every frame the same"
    else:
        try:
            r = (estimator or default_estimator)(frames, fov_deg=fov_deg, time_limit_s=settings.time_limit_s,
                                                 mapper=settings.mapper)
        except RECOVERY_FAILURES as e:
            reason = f"cameras not recovered: {e}"
        else:
            registered = int(torch.as_tensor(r.registered).sum())
            if registered < MIN_REGISTERED:
                reason = f"cameras not recovered: {registered} of {n} frames registered"
            else:
                est = r.cameras.c2w
    if est is None:
        est = static_track(n)
    acc = camera_accuracy(est, requested_c2w)
    return {**acc.as_dict(), "registered": registered, "static": reason,
            "seconds": round(time.perf_counter() - started, 3)}


def transition_track(src_last_c2w: Tensor, tgt_first_c2w: Tensor, n: int) -> Tensor:
    """[n + 2, 4, 4]: the last source camera, the n SLERP transition cameras the model is conditioned on
    (:func:`syn2seq_core.geometry.slerp_poses`), the first target camera."""
    from ..geometry.slerp import slerp_poses

    a, b = src_last_c2w.to(torch.float64), tgt_first_c2w.to(torch.float64)
    return torch.cat([a[None], slerp_poses(a, b, n), b[None]])


def ideal_transition(take, direction: str, n: int, eval_size: tuple[int, int]) -> Tensor | None:
    """[n, 3, h, w] the procedural scene of ``take`` rendered along the SLERP transition track (times linear from
    the last source frame's to the first target frame's), at the evaluation size; None for a take that is not
    procedural (no world recorded in its take.json)."""
    from ..data.synthetic import render, take_scene
    from ..generation.takes import views_of
    from ..geometry.slerp import interpolate_cameras, transition_times
    from .resolution import to_eval_size

    found = take_scene(take)
    if found is None:
        return None
    scene, config = found
    src, tgt = views_of(direction)
    a, b = take.view_cameras(src), take.view_cameras(tgt)
    cams = interpolate_cameras(a, b, n)
    t0, t1 = float(take.frame_times(src)[-1]), float(take.frame_times(tgt)[0])
    times = t0 + transition_times(n, torch.float64) * (t1 - t0)
    frames = render(scene, cams, times.to(torch.float32), supersample=config.supersample, near=config.near)
    return to_eval_size(frames, eval_size)


def transition_scores(first: Tensor, last: Tensor, track: Tensor, interpolators: dict, *,
                      ideal: Tensor | None = None, estimator: Estimator | None = None,
                      settings: CameraEvalSettings = CameraEvalSettings()) -> dict:
    """backend -> :func:`score_video` of ``[first | backend's n frames | last]`` against ``track`` [n + 2, 4, 4]
    (:func:`transition_track`). first, last: [3, h, w] at the evaluation size; interpolators: name -> built
    backend; ideal: [n, 3, h, w] the true frames (scored as ``ideal``). ``static_camera``: what a camera that does
    not move scores against the track (no estimate: the reference a transition whose cameras cannot be recovered
    falls back to, as copy_last is for the generated view)."""
    from ..geometry.align import camera_accuracy, static_track
    from ..interpolation.base import interpolate

    n = len(track) - 2
    out = {STATIC_CAMERA: {**camera_accuracy(static_track(n + 2), track).as_dict(), "registered": 0,
                           "static": "reference: a camera that does not move", "seconds": 0.0}}
    videos = {name: interpolate(first, last, n, backend) for name, backend in interpolators.items()}
    if ideal is not None:
        videos[IDEAL] = ideal
    for name, middle in videos.items():
        clip = torch.cat([first[None], middle.to(first.dtype), last[None]])
        out[name] = score_video(clip, track, estimator=estimator, settings=settings)
    return out


# --- summaries --------------------------------------------------------------------------------------------
def _entries(scores, name: str, transitions: bool) -> list[dict] | None:
    key = "transitions" if transitions else "methods"
    vals = [(s.camera or {}).get(key, {}).get(name) for s in scores]
    return None if any(v is None for v in vals) else vals


def _names(scores, key: str) -> list[str]:
    first = (scores[0].camera or {}).get(key, {})
    return [m for m in first if all(m in (s.camera or {}).get(key, {}) for s in scores)]


def summarize_cameras(scores, reference: str | None = "sample") -> dict:
    """RotErr / TransErr over takes: ``{"takes", "frames", "methods": {name: {"rot_err": MeanCI dict,
    "trans_err": ..., "static": takes scored as static, "registered": mean registered frames}}, "paired_vs_<ref>":
    {name: {metric: paired difference ref - name}}}``; the transitions are methods named ``"transition <backend>"``
    (paired against ``"transition ideal"`` where it exists). ``scores``: TakeScores with ``camera`` set."""
    from ..metrics.frames import mean_ci, paired_difference
    from .reports import NO_CI

    require(scores and all(s.camera for s in scores), "scores", "takes scored with camera accuracy",
            "takes without")
    out = {"takes": len(scores), "frames": scores[0].camera.get("frames"),
           "transition_frames": scores[0].camera.get("transition_frames"), "methods": {}}
    if len(scores) < 2:
        out["ci"] = NO_CI
    groups = {False: _names(scores, "methods"), True: _names(scores, "transitions")}
    values: dict[str, list[dict]] = {}
    for transitions, names in groups.items():
        for name in names:
            label = TRANSITION_PREFIX + name if transitions else name
            entries = _entries(scores, name, transitions)
            values[label] = entries
            out["methods"][label] = {
                **{m: mean_ci([e[m] for e in entries]).to_dict() for m in CAMERA_METRICS},
                "static": sum(1 for e in entries if e["static"]),
                "registered": sum(e["registered"] for e in entries) / len(entries)}
    refs = [(reference, groups[False]), (TRANSITION_PREFIX + IDEAL, [TRANSITION_PREFIX + b for b in groups[True]])]
    for ref, names in refs:
        if ref not in values:
            continue
        out["paired_vs_" + ref] = {
            name: {m: paired_difference([e[m] for e in values[ref]], [e[m] for e in values[name]]).to_dict()
                   for m in CAMERA_METRICS} for name in names if name != ref}
    return out


def summarize_camera_categories(scores, reference: str | None = "sample") -> dict:
    """:func:`summarize_cameras` overall and per category (as :func:`~syn2seq_core.evaluation.run.summarize_categories`)."""
    from .reports import UNCATEGORISED

    groups: dict[str, list] = {}
    for s in scores:
        groups.setdefault(s.category or UNCATEGORISED, []).append(s)
    categorised = any(s.category for s in scores)
    return {"overall": summarize_cameras(scores, reference),
            "categories": {c: summarize_cameras(groups[c], reference) for c in sorted(groups)} if categorised else {}}


def format_camera_table(summary: dict) -> str:
    """A plain-text table of a :func:`summarize_cameras` result."""
    from .reports import format_ci

    note = "; " + summary["ci"] if summary.get("ci") else ""
    lines = [f"camera accuracy, {summary['takes']} takes ({summary['frames']} generated frames; transitions "
             f"{summary['transition_frames']} frames + both ends); mean over takes with 95% CI{note}; lower is better",
             f"{'method':<22} {'RotErr (rad, sum)':>26} {'TransErr (sum)':>26} {'static':>7} {'registered':>11}"]
    for m, e in summary["methods"].items():
        lines.append(f"{m:<22} {format_ci(e['rot_err'], 3):>26} {format_ci(e['trans_err'], 3):>26} "
                     f"{e['static']:>7} {e['registered']:>11.1f}")
    return "\n".join(lines)
