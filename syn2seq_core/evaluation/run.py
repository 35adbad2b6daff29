"""Evaluation over many takes: a model (samples and conditional mean), trivial baselines and other systems' videos.

Scores are on the generated view only (ego for exo2ego), per frame, then per take (clip) means, then the mean over
takes with a 95% Student-t interval. Comparisons between methods are paired per take. Baselines, all computed from
what a method sees:

``copy_last``   the last source frame, repeated for every target frame;
``flat_color``  a flat image of the last source frame's mean colour;
``mean_target`` the mean target-view frame of the training data (when a model's training world is known).

Evaluation resolution (:func:`parse_eval_size`, :func:`to_eval_size`)
    ``eval_size=(h, w)``: every method is scored at that size, the same way: the ground truth is decoded at its
    own size and brought to ``h x w``; generated frames, baselines (from the source view at its own size) and
    other systems' videos likewise, all through :func:`to_eval_size`: a centre crop to the aspect ratio
    ``w / h`` (whole pixels), then :data:`EVAL_FILTER`. ``eval_size=None``: the model's own resolution, every
    video read at that size by the decoder (the behaviour of earlier reports and of the model card's numbers).

PSNR
    Per frame, capped at :data:`syn2seq_core.metrics.frames.PSNR_CAP_DB` (100 dB: an identical frame, e.g. copy_last
    on a static take, scores 100 instead of infinity), then averaged over frames and takes, so every method has a
    finite mean and CI.

"Own minus other" compares a method's PSNR against its own take's ground truth with the PSNR against the next
take's ground truth: a method that only transfers the palette gains little from being on its own take (not
defined with one take).

Other systems' outputs are scored in the same harness: ``external`` videos (a folder per system, matched to takes by
name, :func:`external_video`) are methods like the baselines, with or without a model. Takes carry a
``category``; reports give every summary overall and per category (:func:`summarize_categories`), and per frame
index along the generated view (:func:`frame_curves`). Set-level metrics (FVD on the first 16 frames of every
clip, FID on every frame) have no CI and are marked ``"stable": false`` below the set sizes where their bias
dominates (docs/fvd.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from ..base.errors import Syn2SeqInputError, require
from ..metrics.frames import PSNR_CAP_DB, mean_ci, paired_difference, psnr
from ..metrics.fvd import CONVENTIONAL_FRAMES
from .reports import NO_CI, UNCATEGORISED, format_ci
from .resolution import to_eval_size

BASELINES = ("copy_last", "flat_color", "mean_target")
GROUND_TRUTH = "ground_truth"  # the take's own target-view video, as camera accuracy names it


def baseline_frames(name: str, source: Tensor, n: int, mean_target: Tensor | None = None) -> Tensor | None:
    """[n, 3, h, w] frames of a trivial baseline from the source view [Ts, 3, h, w]."""
    last = source[-1]
    if name == "copy_last":
        return last.expand(n, -1, -1, -1).clone()
    if name == "flat_color":
        return last.mean(dim=(-1, -2), keepdim=True).expand(n, -1, *last.shape[-2:]).clone()
    if name == "mean_target":
        if mean_target is None:
            return None
        return mean_target.expand(n, -1, -1, -1).clone()
    raise KeyError(name)


def training_mean_target(model, direction: str = "exo2ego", takes: int = 256) -> Tensor | None:
    """The mean target-view frame [3, h, w] of the synthetic world a model was trained on (None if unknown)."""
    data = model.data
    if not data:
        return None
    from ..data.synthetic import SyntheticConfig, render_takes

    cfg = SyntheticConfig(size=data.get("size", model.size[0]), supersample=data.get("supersample", 2),
                          exo_frames=data.get("exo_frames", 8), ego_frames=data.get("ego_frames", 8))
    total, count = 0, 0
    for start in range(0, takes, 32):
        b = render_takes(list(range(start, min(takes, start + 32))), cfg)
        frames = b.ego_frames if direction == "exo2ego" else b.exo_frames
        total = total + frames.sum(dim=(0, 1))
        count += frames.shape[0] * frames.shape[1]
    return total / count


@dataclass
class TakeScores:
    name: str
    per_method: dict  # method -> evaluate_frames report
    own_psnr: dict    # method -> clip PSNR vs own GT
    other_psnr: dict  # method -> clip PSNR vs the next take's GT (empty with a single take)
    category: str | None = None
    # The middle generated frame [3, h, w] of every method, with "source" (the last source frame) and "target".
    example: dict = field(default_factory=dict)
    # FVD: the I3D features [400] of each method's clip and of the ground truth ("target"), or why there are none.
    features: dict | str | None = None
    # FID: the Inception features [frames, 2048] of each method's frames and of the ground truth ("target").
    frame_features: dict | None = None
    # Camera accuracy (evaluation_cameras): {"frames", "transition_frames", "methods": {method: entry},
    # "transitions": {backend: entry}}, entry = score_video's dict; None when not asked for.
    camera: dict | None = None


# --- per-take records: one take's scores and features in a file, for runs over many processes -------------
RECORD_KEY = "syn2seq.eval_take"
RECORD_VERSION = 1


def take_record(scores: TakeScores, valid_for: dict, take: dict, made: dict | None = None) -> bytes:
    """One take's :class:`TakeScores` as a ``.safetensors`` file's bytes: the per-method scores, own / other PSNR
    and category as JSON in the metadata (floats survive JSON exactly), the tensors (example frames, FVD's I3D
    features, FID's Inception features) as they are. ``valid_for``: what makes the record valid (model hash,
    sampling, evaluation size, the run's takes...: a later run reuses it only with the same); ``take``: this
    take's own part of that (its position, name, neighbour, other systems' videos); ``made``: how it was made
    (the model's resolved steps and size, the device, the batch size: facts, not conditions)."""
    from safetensors.torch import save

    tensors = {f"example/{k}": v.contiguous() for k, v in scores.example.items()}
    features = scores.features
    if isinstance(features, dict):
        tensors.update({f"i3d/{k}": v.contiguous() for k, v in features.items()})
        features = "tensors"
    if scores.frame_features is not None:
        tensors.update({f"inception/{k}": v.contiguous() for k, v in scores.frame_features.items()})
    doc = {"version": RECORD_VERSION, "valid_for": valid_for, "take": take, "made": made or {}, "name": scores.name,
           "category": scores.category, "per_method": scores.per_method, "own_psnr": scores.own_psnr,
           "other_psnr": scores.other_psnr, "features": features,
           "frame_features": scores.frame_features is not None, "camera": scores.camera,
           "order": {prefix: [k[len(prefix) + 1:] for k in tensors if k.startswith(prefix + "/")]
                     for prefix in ("example", "i3d", "inception")}}  # safetensors sorts its keys
    import json

    return save(tensors, metadata={RECORD_KEY: json.dumps(doc)})


def read_record_doc(path) -> dict:
    """The JSON part of a :func:`take_record` file (header only: no tensor is read); a file that is not one is
    refused naming it."""
    import json

    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        doc = json.loads(meta[RECORD_KEY])
        require(isinstance(doc, dict) and doc.get("version") == RECORD_VERSION, "record", "", "")
        return doc
    except Exception:  # noqa: BLE001 -- any damage (truncated, foreign file) is refused below
        raise Syn2SeqInputError(f"eval record '{path}'", f"a per-take record of syn2seq eval (version "
                                f"{RECORD_VERSION})", "a damaged or foreign file",
                                "Delete it: the take is scored again") from None


def read_take_record(path) -> TakeScores:
    """The :class:`TakeScores` of a :func:`take_record` file."""
    from pathlib import Path

    from safetensors.torch import load

    doc = read_record_doc(path)
    tensors = load(Path(path).read_bytes())  # in memory, not mapped: the file may be replaced meanwhile

    def part(prefix: str) -> dict:
        return {k: tensors[f"{prefix}/{k}"] for k in doc["order"][prefix]}

    features = doc["features"]
    if features == "tensors":
        features = part("i3d")
    return TakeScores(doc["name"], doc["per_method"], doc["own_psnr"], doc["other_psnr"], doc["category"],
                      part("example"), features, part("inception") if doc["frame_features"] else None,
                      doc.get("camera"))


VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv")


def external_video(root, take: str, view: str, label: str) -> Path:
    """The video another system generated for ``take``, inside ``root``: ``root/<take>/<view>_generated.mp4`` (what
    ``eval --write-videos`` and ``exo2ego --out`` write), ``root/<take>/<view>.mp4`` or ``root/<take>.mp4``
    (.mov / .mkv too), the first that exists."""
    from ..io.safe_paths import resolve_inside

    names = [f"{take}/{view}_generated{s}" for s in VIDEO_SUFFIXES] + [f"{take}/{view}{s}" for s in VIDEO_SUFFIXES]
    names += [f"{take}{s}" for s in VIDEO_SUFFIXES]
    for name in names:
        path = resolve_inside(root, name, owner=f"--videos {label}", entry=f"take {take!r}")
        if path.is_file():
            return path
    raise Syn2SeqInputError(f"--videos {label}", f"a video for take '{take}' in '{root}'",
                            f"none of {names[0]}, {names[len(VIDEO_SUFFIXES)]}, {names[2 * len(VIDEO_SUFFIXES)]} "
                            "(or .mov / .mkv)",
                            "Name each video after its take")


def check_external_video(path: Path, frames: int, label: str, take: str, view: str) -> int:
    """Check, before any work, that another system's video of ``take`` decodes through its first ``frames`` frames
    (the take's ``view``; extra frames are ignored): the container's count first, then every frame decoded (at a
    tiny size: only decodability is checked). Returns the frames the header announces; raises
    :class:`Syn2SeqInputError` naming the label, the file and what was found."""
    from ..io.video import iter_video_chunks, probe_video

    name = f"--videos {label} '{path}'"
    try:
        announced = probe_video(path).frames
    except Syn2SeqInputError as e:
        raise Syn2SeqInputError(name, "a decodable video", e.found) from None
    if announced < frames:
        raise Syn2SeqInputError(name, f"at least the {frames} frames of take '{take}' {view}", f"{announced} frames")
    decoded = 0
    try:
        for chunk in iter_video_chunks(path, 64, stop=frames, size=(16, 16), crop=None):
            decoded += len(chunk)
    except Syn2SeqInputError as e:
        raise Syn2SeqInputError(name, f"the {frames} frames of take '{take}' {view}, decodable", e.found) from None
    if decoded < frames:
        raise Syn2SeqInputError(name, f"at least the {frames} frames of take '{take}' {view}",
                                f"{decoded} decodable frames (the header announces {announced})")
    return announced


def score_take(take, other, model, direction: str = "exo2ego", *, eval_size: tuple[int, int] | None = None,
               lpips_weights=None, baselines=BASELINES, mean_target: Tensor | None = None, write_to=None,
               chunk: int = 16, external: Mapping[str, Path] | None = None, category: str | None = None, i3d=None,
               inception=None, camera=None, estimator=None, interpolators=None, **options) -> TakeScores:
    """Score ``take``'s generated view: the ``model``'s sample (and its conditional mean with ``with_mean``), the
    ``baselines`` and the ``external`` videos (label -> a video of this take's generated view by another system; it
    needs at least as many frames as the view, extra frames are ignored) against its ground truth, and their PSNR
    against ``other``'s ground truth (another take; None: no "own minus other"), streaming
    (:func:`syn2seq_core.generation.takes.iter_take`): memory does not grow with the length of the takes.

    ``model`` None: no generation; the baselines (``mean_target`` needs a model) and the external videos only, at
    ``eval_size``. ``eval_size`` ``(h, w)``: every method at that size through :func:`to_eval_size` (the ground
    truth from its own size); None: the model's size, as the decoder reads it. ``write_to``: an existing folder
    (normally the staging folder of :func:`syn2seq_core.io.atomic.result_dir`) that receives the take's result set, as
    ``syn2seq exo2ego`` writes it. ``category``: the take's category (default ``take.category``). ``i3d``: an FVD
    network (``fvd.load_i3d``): the first 16 frames of every clip are kept for its features. ``inception``: an FID
    network (``fid.load_inception``): every scored frame's features are kept. ``camera``: a
    :class:`~syn2seq_core.evaluation.cameras.CameraEvalSettings`: the camera accuracy of every method, the ground
    truth and the transitions of ``interpolators`` (name -> built backend) is scored with ``estimator`` (None: the
    pack's structure from motion; see :mod:`syn2seq_core.evaluation.cameras`). options: as iter_take."""
    from ..generation.takes import ResultWriter, _Held, iter_take, views_of
    from ..io.video import iter_video_chunks
    from ..metrics.frames import FrameScores

    require(model is not None or eval_size is not None, "eval_size", "an evaluation size when there is no model",
            None)
    src, tgt = views_of(direction)
    h, w = eval_size if eval_size is not None else model.size
    resized = eval_size is not None

    def stream(chunks):
        return _Held(to_eval_size(c, (h, w)) for c in chunks) if resized else _Held(chunks)

    def view(t, name: str):
        return stream(t.iter_view(name, chunk, size=None if resized else (w, h))[0])

    n_src = take.num_frames(src)
    last = take.read_view(src, size=None if resized else (w, h), start=n_src - 1)[0]
    last = to_eval_size(last, (h, w)) if resized else last
    if mean_target is not None and resized:
        mean_target = to_eval_size(mean_target, (h, w))
    fixed = {name: baseline_frames(name, last, 1, mean_target) for name in baselines}
    fixed = {name: f for name, f in fixed.items() if f is not None}
    n_target = take.num_frames(tgt)
    n_other = other.num_frames(tgt) if other is not None else 0
    other_frames = view(other, tgt) if other is not None else None
    outside = {label: stream(iter_video_chunks(path, chunk, size=None if resized else (w, h)))
               for label, path in (external or {}).items()}
    target = view(take, tgt) if (resized or model is None) else None
    middle = n_target // 2
    example: dict = {}
    clips: dict[str, list[Tensor]] = {}  # the first CONVENTIONAL_FRAMES frames of each method, for FVD
    frame_features: dict[str, list[Tensor]] = {}
    scores: dict[str, FrameScores] = {}
    other_values: dict[str, list[float]] = {}
    camera_frames: dict[str, list[Tensor]] = {}  # the first camera.frames frames of each method and the truth
    writer = None if write_to is None or model is None else ResultWriter.for_take(write_to, take, direction)

    def blocks():
        """(start, scored frames, {method: predictions}, ground truth) per block of the generated view."""
        if model is None:
            for start in range(0, n_target, chunk):
                yield start, min(chunk, n_target - start), {}, None
            return
        for block in iter_take(take, model, direction, chunk=chunk, **options):
            if writer is not None:
                writer.add(block)
            k = block.scored
            if not k:
                continue
            preds = {"sample": block.generated[:k]}
            if block.mean is not None:
                preds["mean"] = block.mean[:k]
            if resized:
                preds = {m: to_eval_size(p, (h, w)) for m, p in preds.items()}
            yield block.start, k, preds, None if resized else block.target[:k]

    try:
        for start, k, preds, truth in blocks():
            truth = target.take(k) if truth is None else truth
            preds.update({name: f.expand(k, -1, -1, -1) for name, f in fixed.items()})
            preds.update({label: held.take(k) for label, held in outside.items()})
            if i3d is not None and start < CONVENTIONAL_FRAMES:
                keep = min(k, CONVENTIONAL_FRAMES - start)
                for method, pred in {**preds, "target": truth}.items():
                    clips.setdefault(method, []).append(pred[:keep].clone())
            if inception is not None:
                from ..metrics.fid import inception_features

                for method, pred in {**preds, "target": truth}.items():
                    frame_features.setdefault(method, []).append(inception_features(pred, inception).float())
            if camera is not None and start < camera.frames:
                keep = min(k, camera.frames - start)
                for method, pred in {**preds, GROUND_TRUTH: truth}.items():
                    camera_frames.setdefault(method, []).append(pred[:keep].clone())
            if start <= middle < start + k:
                i = middle - start
                example = {"source": last[0], **{m: p[i] for m, p in preds.items()}, "target": truth[i]}
            j = max(0, min(k, n_other - start))
            theirs = other_frames.take(k)[:j] if other_frames is not None else None
            for method, pred in preds.items():
                scores.setdefault(method, FrameScores(lpips_weights)).add(pred, truth)
                if j:
                    other_values.setdefault(method, []).extend(psnr(pred[:j], theirs, cap=PSNR_CAP_DB).tolist())
        reports = {method: s.report() for method, s in scores.items()}
        if writer is not None:
            writer.close(writer.report(take.name, model, reports["sample"], reports.get("mean")))
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    own = {method: float(r["psnr"]["mean"]) for method, r in reports.items()}
    other_psnr = {method: sum(v) / len(v) for method, v in other_values.items()}
    features = None
    if i3d is not None:
        features = _clip_features(clips, i3d, take.name)
    frames = {m: torch.cat(f) for m, f in frame_features.items()} if inception is not None else None
    cameras = None
    if camera is not None:
        cameras = _camera_scores(take, direction, camera, {m: torch.cat(f) for m, f in camera_frames.items()},
                                 last[0], (h, w), estimator, interpolators or {})
    return TakeScores(take.name, reports, own, other_psnr, category if category is not None else take.category,
                      {k: v.clone() for k, v in example.items()}, features, frames, cameras)


def _camera_scores(take, direction: str, settings, frames: dict[str, Tensor], source_last: Tensor,
                   size: tuple[int, int], estimator, interpolators: dict) -> dict:
    """One take's camera accuracy (evaluation_cameras): every method's first frames and the ground truth's against
    the requested target track; each backend's transition (and the ideal one of a procedural take) against the
    SLERP track from the last source camera to the first target camera."""
    from ..generation.takes import views_of
    from .cameras import horizontal_fov_deg, ideal_transition, score_video, transition_scores, transition_track

    src, tgt = views_of(direction)
    h, w = size
    truth = frames[GROUND_TRUTH]
    n = len(truth)
    requested = take.view_cameras(tgt, size=(w, h), stop=n)
    fov = None if requested.fisheye is not None else horizontal_fov_deg(requested.K[0])
    methods = {m: score_video(f, requested.c2w, estimator=estimator, fov_deg=fov, settings=settings)
               for m, f in frames.items()}
    nt = settings.transition_frames
    track = transition_track(take.view_cameras(src).c2w[-1], take.view_cameras(tgt).c2w[0], nt)
    ideal = ideal_transition(take, direction, nt, size) if settings.ideal else None
    transitions = transition_scores(source_last, truth[0], track, interpolators, ideal=ideal, estimator=estimator,
                                    settings=settings)
    return {"frames": n, "transition_frames": nt, "fov_deg": fov, "methods": methods, "transitions": transitions}


def _clip_features(clips: dict[str, list[Tensor]], net, name: str) -> dict | str:
    """I3D features [400] per method of one take's clips, or why FVD cannot use them."""
    from ..metrics.fvd import MIN_FRAMES, i3d_features

    frames = sum(len(c) for c in clips.get("target", []))
    if frames < MIN_FRAMES:
        return f"take '{name}' has {frames} generated frames; the I3D of FVD needs clips of at least {MIN_FRAMES}"
    methods = list(clips)
    videos = torch.stack([torch.cat(clips[m]) for m in methods])
    return dict(zip(methods, i3d_features(videos, net)))


def default_reference(methods) -> str | None:
    """The method paired differences are taken against: the model's sample, else the first other system's videos,
    else None (baselines only)."""
    methods = list(methods)
    if "sample" in methods:
        return "sample"
    return next((m for m in methods if m not in BASELINES and m != "mean"), None)


def summarize(scores: list[TakeScores], reference: str | None = "sample") -> dict:
    """Mean over takes with CIs per method and metric, paired differences vs ``reference`` (and vs ``"mean"`` when
    scored), own-other gaps, FVD / FID per method. With one take the means have no CI (``"ci"`` says so)."""
    methods = list(scores[0].per_method)
    reference = reference if reference in methods else default_reference(methods)
    out = {"takes": len(scores), "methods": {}, "reference": reference, "own_minus_other_psnr": {}}
    if len(scores) < 2:
        out["ci"] = NO_CI
    for m in methods:
        entry = {}
        for metric in ("psnr", "ssim"):
            entry[metric] = mean_ci([s.per_method[m][metric]["mean"] for s in scores]).to_dict()
        for metric in ("lpips_alex", "lpips_vgg"):
            v = scores[0].per_method[m].get(metric)
            if v is None:
                continue
            entry[metric] = v if isinstance(v, str) else mean_ci(
                [s.per_method[m][metric]["mean"] for s in scores]).to_dict()
        fvd = _fvd_summary(scores, m)
        if fvd is not None:
            entry["fvd"] = fvd
        fid = _fid_summary(scores, m)
        if fid is not None:
            entry["fid"] = fid
        out["methods"][m] = entry
        if all(m in s.other_psnr for s in scores):
            out["own_minus_other_psnr"][m] = paired_difference([s.own_psnr[m] for s in scores],
                                                               [s.other_psnr[m] for s in scores]).to_dict()
    # Paired differences against the reference and, when scored, against the conditional mean; with
    # "own_minus_other": how much more take-specific ref is than m (difference of their own - other gaps).
    gaps = {m: [s.own_psnr[m] - s.other_psnr[m] for s in scores] for m in out["own_minus_other_psnr"]}
    for ref in dict.fromkeys(r for r in (reference, "mean") if r is not None):
        if ref not in methods:
            continue
        paired = {}
        for m in methods:
            if m == ref:
                continue
            paired[m] = {metric: paired_difference([s.per_method[ref][metric]["mean"] for s in scores],
                                                   [s.per_method[m][metric]["mean"] for s in scores]).to_dict()
                         for metric in ("psnr", "ssim")}
            if ref in gaps and m in gaps:
                paired[m]["own_minus_other"] = paired_difference(gaps[ref], gaps[m]).to_dict()
        out["paired_vs_" + ref] = paired
    if reference is not None:
        out.setdefault("paired_vs_" + reference, {})
    return out


def _fvd_summary(scores: list[TakeScores], method: str) -> dict | str | None:
    """FVD of ``method``'s clips against the ground-truth clips of the same takes (a set-level metric: no CI;
    ``n`` videos per set, ``stable`` False below fvd.MINIMUM_VIDEOS), its reason when unavailable, None when no
    I3D was given."""
    from ..metrics.fvd import HOW_TO_GET_I3D, MINIMUM_VIDEOS, fvd_entry

    if all(s.features is None for s in scores):
        return f"unavailable: no I3D weights given. {HOW_TO_GET_I3D}"
    bad = next((s.features for s in scores if isinstance(s.features, str)), None)
    if bad is not None:
        return f"unavailable: {bad}"
    if len(scores) < 2:
        return "unavailable: FVD compares sets of videos: at least 2 takes needed"
    entry = fvd_entry(torch.stack([s.features[method] for s in scores]),
                      torch.stack([s.features["target"] for s in scores]))
    return {"mean": float(entry["fvd"]), "ci_low": "nan", "ci_high": "nan", "n": entry["videos"][0],
            "stable": entry["stable"], "stable_from": MINIMUM_VIDEOS}


def _fid_summary(scores: list[TakeScores], method: str) -> dict | str | None:
    """Frame-level FID of ``method``'s frames against the ground-truth frames of the same takes (set-level: no CI;
    ``n`` frames per set, ``stable`` False below fid.MINIMUM_FRAMES), its reason when unavailable, None when no
    Inception was given."""
    from ..metrics.fid import HOW_TO_GET_INCEPTION, MINIMUM_FRAMES, fid_entry

    if all(s.frame_features is None for s in scores):
        return f"unavailable: no Inception weights given. {HOW_TO_GET_INCEPTION}"
    a = torch.cat([s.frame_features[method] for s in scores]).double()
    b = torch.cat([s.frame_features["target"] for s in scores]).double()
    if min(len(a), len(b)) < 2:
        return "unavailable: FID compares sets of frames: at least 2 frames needed"
    entry = fid_entry(a, b)
    return {"mean": float(entry["fid"]), "ci_low": "nan", "ci_high": "nan", "n": entry["frames"][0],
            "stable": entry["stable"], "stable_from": MINIMUM_FRAMES}


def summarize_categories(scores: list[TakeScores], reference: str | None = "sample") -> dict:
    """:func:`summarize` over all takes (``"overall"``) and over the takes of each category (``"categories"``:
    name -> summary, sorted; takes without one under :data:`UNCATEGORISED`; empty when no take has a category;
    a category of one take has means without CIs)."""
    groups: dict[str, list[TakeScores]] = {}
    for s in scores:
        groups.setdefault(s.category or UNCATEGORISED, []).append(s)
    categorised = any(s.category for s in scores)
    return {"overall": summarize(scores, reference),
            "categories": {c: summarize(groups[c], reference) for c in sorted(groups)} if categorised else {}}


def frame_curves(scores: list[TakeScores], metrics=("psnr", "ssim")) -> dict:
    """Quality along the generated view: per method and metric, the mean over takes (95% CI) of the metric at
    each frame index (0 = the first generated frame, next to the source view), over the takes that long."""
    from ..metrics.frames import _json_float

    out: dict = {}
    for method in scores[0].per_method:
        for metric in metrics:
            series = [s.per_method[method][metric]["per_frame"] for s in scores
                      if isinstance(s.per_method.get(method, {}).get(metric), dict)]
            if not series:
                continue
            entry = {"index": [], "mean": [], "ci_low": [], "ci_high": [], "n": []}
            for i in range(max(len(v) for v in series)):
                ci = mean_ci([v[i] for v in series if len(v) > i])
                for key, value in (("index", i), ("mean", _json_float(ci.mean)), ("ci_low", _json_float(ci.low)),
                                   ("ci_high", _json_float(ci.high)), ("n", ci.n)):
                    entry[key].append(value)
            out.setdefault(method, {})[metric] = entry
    return out


def format_table(summary: dict, reference: str | None = None) -> str:
    """A plain-text table of a :func:`summarize` result (paired differences against its reference)."""
    reference = reference or summary.get("reference")
    note = "; " + summary["ci"] if summary.get("ci") else ""
    head = f"{reference} - method (PSNR)" if reference else ""
    lines = [f"{summary['takes']} takes; mean over takes with 95% CI{note}",
             f"{'method':<14} {'PSNR dB':>22} {'SSIM':>24} {'own-other PSNR':>22} {head:>26}"]
    for m, e in summary["methods"].items():
        p, s = e["psnr"], e["ssim"]
        gap = summary["own_minus_other_psnr"].get(m)
        diff = summary.get("paired_vs_" + str(reference), {}).get(m, {}).get("psnr")
        lines.append(f"{m:<14} {format_ci(p, 2):>22} {format_ci(s, 4):>24} {format_ci(gap, 2):>22} {format_ci(diff, 2):>26}")
    if summary.get("paired_vs_mean"):
        lines.append(f"{'mean - method':<14} {'PSNR dB':>22} {'SSIM':>24} {'own-other PSNR':>22}")
        for m, d in summary["paired_vs_mean"].items():
            lines.append(f"{m:<14} {format_ci(d['psnr'], 2, '+'):>22} {format_ci(d['ssim'], 4, '+'):>24} "
                         f"{format_ci(d.get('own_minus_other'), 2, '+'):>22}")
    return "\n".join(lines)


def compare_reports(reports: dict[str, dict], method: str = "sample", reference: str | None = None) -> dict:
    """Paired per-take comparison of several ``syn2seq eval`` reports (e.g. the ablation's variants).

    reports: label -> a report written by ``syn2seq eval --out`` on the same takes at the same evaluation size
    (reports that record different sizes are refused). For each label: the mean
    of ``method`` ("sample", "mean" or a baseline) with its 95% CI; for each pair (or each label against
    ``reference``): the mean per-take difference ``a - b`` with its paired 95% CI, for PSNR and SSIM.
    """
    from ..base.errors import Syn2SeqInputError

    labels = list(reports)
    if len(labels) < 2:
        raise Syn2SeqInputError("reports", "at least two eval reports", len(labels))
    takes = {label: [t["take"] for t in r["per_take"]] for label, r in reports.items()}
    first = labels[0]
    for label in labels[1:]:
        if takes[label] != takes[first]:
            raise Syn2SeqInputError(f"report '{label}'", f"the same takes in the same order as '{first}' "
                                    f"({len(takes[first])} takes)", f"{len(takes[label])} takes, other names "
                                    "or order", "Evaluate every model on the same --takes folder")
    sizes = {label: (r["eval_size"]["width"], r["eval_size"]["height"]) for label, r in reports.items()
             if isinstance(r.get("eval_size"), dict)}
    if len(set(sizes.values())) > 1:
        raise Syn2SeqInputError("reports", "reports scored at one evaluation size",
                                ", ".join(f"{label}: {w}x{h}" for label, (w, h) in sizes.items()),
                                "Evaluate every model with the same --eval-size (e.g. 256)")
    for label, r in reports.items():
        if method not in r["per_take"][0]["methods"]:
            raise Syn2SeqInputError(f"report '{label}'", f"scores of method '{method}'",
                                    sorted(r["per_take"][0]["methods"]),
                                    "Use --mean in syn2seq eval to score the conditional mean")
    if reference is not None and reference not in reports:
        raise Syn2SeqInputError("reference", f"one of {labels}", reference)

    def values(label: str, metric: str) -> list[float]:
        return [t["methods"][method][metric]["mean"] for t in reports[label]["per_take"]]

    out = {"takes": len(takes[first]), "method": method, "models": {}, "paired": {}}
    for label in labels:
        out["models"][label] = {"model": reports[label].get("model"),
                                **{m: mean_ci(values(label, m)).to_dict() for m in ("psnr", "ssim")}}
    pairs = ([(a, reference) for a in labels if a != reference] if reference is not None else
             [(a, b) for i, a in enumerate(labels) for b in labels[i + 1:]])
    for a, b in pairs:
        out["paired"][f"{a} - {b}"] = {m: paired_difference(values(a, m), values(b, m)).to_dict()
                                       for m in ("psnr", "ssim")}
    return out


def format_comparison(comparison: dict) -> str:
    """A plain-text table of a :func:`compare_reports` result."""
    lines = [f"{comparison['takes']} takes, method '{comparison['method']}'; mean with 95% CI",
             f"{'model':<28} {'PSNR dB':>24} {'SSIM':>27}"]
    for label, e in comparison["models"].items():
        lines.append(f"{label:<28} {format_ci(e['psnr'], 2):>24} {format_ci(e['ssim'], 4):>27}")
    lines.append(f"{'paired difference':<28} {'PSNR dB':>24} {'SSIM':>27}")
    for pair, e in comparison["paired"].items():
        lines.append(f"{pair:<28} {format_ci(e['psnr'], 2, '+'):>24} {format_ci(e['ssim'], 4, '+'):>27}")
    return "\n".join(lines)
