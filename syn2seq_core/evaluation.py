"""Evaluation over many takes: the model (samples and conditional mean) against trivial baselines.

Scores are on the generated view only (ego for exo2ego), at the model's resolution, per frame, then per
take (clip) means, then the mean over takes with a 95% Student-t interval. Comparisons between methods
are paired per take. Baselines, all computed from what the model sees:

``copy_last``   the last source frame, repeated for every target frame;
``flat_color``  a flat image of the last source frame's mean colour;
``mean_target`` the mean target-view frame of the training data (when the model's training world is known).

"Own minus other" compares a method's PSNR against its own take's ground truth with the PSNR against the
next take's ground truth: a method that only transfers the palette gains little from being on its own take.

Other systems' outputs are scored in the same harness: ``external`` videos (a folder per system, matched to
takes by name, :func:`external_video`) are methods like the baselines. Takes carry a ``category``; reports give
every summary overall and per category (:func:`summarize_categories`), and per frame index along the
generated view (:func:`frame_curves`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor

from .errors import Syn2SeqInputError
from .fvd import CONVENTIONAL_FRAMES
from .metrics import mean_ci, paired_difference, psnr

BASELINES = ("copy_last", "flat_color", "mean_target")


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
    from .data.synthetic import SyntheticConfig, render_takes

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
    other_psnr: dict  # method -> clip PSNR vs the next take's GT
    category: str | None = None
    # The middle generated frame [3, h, w] of every method, with "source" (the last source frame) and "target".
    example: dict = field(default_factory=dict)
    # FVD: the I3D features [400] of each method's clip and of the ground truth ("target"), or why there are none.
    features: dict | str | None = None


VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv")


def external_video(root, take: str, view: str, label: str) -> Path:
    """The video another system generated for ``take``, inside ``root``: ``root/<take>/<view>_generated.mp4`` (what
    ``eval --write-videos`` and ``exo2ego --out`` write), ``root/<take>/<view>.mp4`` or ``root/<take>.mp4``
    (.mov / .mkv too), the first that exists."""
    from .safe_paths import resolve_inside

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


def score_take(take, other, model, direction: str = "exo2ego", *, lpips_weights=None, baselines=BASELINES,
               mean_target: Tensor | None = None, write_to=None, chunk: int = 16,
               external: Mapping[str, Path] | None = None, category: str | None = None, i3d=None,
               **options) -> TakeScores:
    """Generate ``take``'s other view and score it, its conditional mean (``with_mean``), the ``baselines`` and
    the ``external`` videos (label -> a video of this take's generated view by another system, resized to the
    model's size; it needs at least as many frames as the view, extra frames are ignored) against its ground
    truth, and their PSNR against ``other``'s ground truth (another take), streaming
    (:func:`syn2seq_core.generation.iter_take`): memory does not grow with the length of the takes.
    ``write_to``: also write the take's result set there (as ``syn2seq exo2ego`` would). ``category``: the
    take's category (default its own ``take.category``). ``i3d``: an FVD network (``fvd.load_i3d``): the first
    16 frames of every method's clip and of the ground truth are kept for its features. options: as iter_take."""
    from contextlib import nullcontext

    from .atomic import result_dir
    from .generation import ResultWriter, _Held, iter_take, views_of
    from .metrics import FrameScores
    from .video_io import iter_video_chunks, probe_video

    src, tgt = views_of(direction)
    h, w = model.size
    last = take.read_view(src, size=(w, h), start=take.num_frames(src) - 1)[0]
    fixed = {name: baseline_frames(name, last, 1, mean_target) for name in baselines}
    fixed = {name: f for name, f in fixed.items() if f is not None}
    n_other, n_target = other.num_frames(tgt), take.num_frames(tgt)
    other_frames = _Held(other.iter_view(tgt, chunk, size=(w, h))[0])
    outside = {}
    for label, path in (external or {}).items():
        frames = probe_video(path).frames
        if frames < n_target:
            raise Syn2SeqInputError(f"--videos {label} '{path}'", f"at least the {n_target} frames of take "
                                    f"'{take.name}' {tgt}", f"{frames} frames")
        outside[label] = _Held(iter_video_chunks(path, chunk, size=(w, h)))
    middle = n_target // 2
    example: dict = {}
    clips: dict[str, list[Tensor]] = {}  # the first CONVENTIONAL_FRAMES frames of each method, for FVD
    scores: dict[str, FrameScores] = {}
    other_values: dict[str, list[float]] = {}
    with result_dir(write_to) if write_to is not None else nullcontext() as folder:
        writer = None if folder is None else ResultWriter.for_take(folder, take, direction)
        try:
            for block in iter_take(take, model, direction, chunk=chunk, **options):
                if writer is not None:
                    writer.add(block)
                k = block.scored
                if not k:
                    continue
                preds = {"sample": block.generated[:k]}
                if block.mean is not None:
                    preds["mean"] = block.mean[:k]
                preds.update({name: f.expand(k, -1, -1, -1) for name, f in fixed.items()})
                preds.update({label: held.take(k) for label, held in outside.items()})
                if i3d is not None and block.start < CONVENTIONAL_FRAMES:
                    keep = min(k, CONVENTIONAL_FRAMES - block.start)
                    for method, pred in {**preds, "target": block.target[:k]}.items():
                        clips.setdefault(method, []).append(pred[:keep].clone())
                if block.start <= middle < block.start + k:
                    i = middle - block.start
                    example = {"source": last[0], **{m: p[i] for m, p in preds.items()}, "target": block.target[i]}
                j = max(0, min(k, n_other - block.start))
                theirs = other_frames.take(k)[:j]
                for method, pred in preds.items():
                    scores.setdefault(method, FrameScores(lpips_weights)).add(pred, block.target[:k])
                    if j:
                        other_values.setdefault(method, []).extend(psnr(pred[:j], theirs).tolist())
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
    return TakeScores(take.name, reports, own, other_psnr, category if category is not None else take.category,
                      {k: v.clone() for k, v in example.items()}, features)


def _clip_features(clips: dict[str, list[Tensor]], net, name: str) -> dict | str:
    """I3D features [400] per method of one take's clips, or why FVD cannot use them."""
    import torch

    from .fvd import MIN_FRAMES, i3d_features

    frames = sum(len(c) for c in clips.get("target", []))
    if frames < MIN_FRAMES:
        return f"take '{name}' has {frames} generated frames; the I3D of FVD needs clips of at least {MIN_FRAMES}"
    methods = list(clips)
    videos = torch.stack([torch.cat(clips[m]) for m in methods])
    return dict(zip(methods, i3d_features(videos, net)))


def summarize(scores: list[TakeScores], reference: str = "sample") -> dict:
    """Mean over takes with CIs per method and metric, paired differences vs ``reference``, own-other gaps."""
    methods = list(scores[0].per_method)
    out = {"takes": len(scores), "methods": {}, "paired_vs_" + reference: {}, "own_minus_other_psnr": {}}
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
        out["methods"][m] = entry
        if all(m in s.other_psnr for s in scores):
            out["own_minus_other_psnr"][m] = paired_difference([s.own_psnr[m] for s in scores],
                                                               [s.other_psnr[m] for s in scores]).to_dict()
    # Paired differences against the sample and, when scored, against the conditional mean; with
    # "own_minus_other": how much more take-specific ref is than m (difference of their own - other gaps).
    gaps = {m: [s.own_psnr[m] - s.other_psnr[m] for s in scores] for m in out["own_minus_other_psnr"]}
    for ref in dict.fromkeys((reference, "mean")):
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
    return out


def _fvd_summary(scores: list[TakeScores], method: str) -> dict | str | None:
    """FVD of ``method``'s clips against the ground-truth clips of the same takes (a set-level metric: no CI;
    ``n`` videos per set, ``stable`` False below fvd.MINIMUM_VIDEOS), its reason when unavailable, None when no
    I3D was given."""
    from .fvd import HOW_TO_GET_I3D, fvd_entry

    if all(s.features is None for s in scores):
        return f"unavailable: no I3D weights given. {HOW_TO_GET_I3D}"
    bad = next((s.features for s in scores if isinstance(s.features, str)), None)
    if bad is not None:
        return f"unavailable: {bad}"
    if len(scores) < 2:
        return "unavailable: FVD compares sets of videos: at least 2 takes needed"
    import torch

    entry = fvd_entry(torch.stack([s.features[method] for s in scores]),
                      torch.stack([s.features["target"] for s in scores]))
    value = float(entry["fvd"])
    return {"mean": value, "ci_low": float("nan"), "ci_high": float("nan"), "n": entry["videos"][0],
            "stable": entry["stable"]}


UNCATEGORISED = "(none)"


def summarize_categories(scores: list[TakeScores], reference: str = "sample") -> dict:
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
                for key, value in (("index", i), ("mean", ci.mean), ("ci_low", ci.low), ("ci_high", ci.high),
                                   ("n", ci.n)):
                    entry[key].append(value)
            out.setdefault(method, {})[metric] = entry
    return out


def format_ci(d: dict | None, digits: int, sign: str = "") -> str:
    """``mean [low, high]`` of a MeanCI dict (``sign="+"`` for differences); "-" for None."""
    if d is None:
        return "-"
    mean, low, high = (float(d[k]) for k in ("mean", "ci_low", "ci_high"))  # JSON keeps NaN / inf as text
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{mean:{sign}.{digits}f} (n={d.get('n', '?')}, no CI)"
    return f"{mean:{sign}.{digits}f} [{low:{sign}.{digits}f}, {high:{sign}.{digits}f}]"


def format_table(summary: dict, reference: str = "sample") -> str:
    """A plain-text table of a :func:`summarize` result."""
    lines = [f"{summary['takes']} takes; mean over takes with 95% CI",
             f"{'method':<14} {'PSNR dB':>22} {'SSIM':>24} {'own-other PSNR':>22} {reference + ' - method (PSNR)':>26}"]
    for m, e in summary["methods"].items():
        p, s = e["psnr"], e["ssim"]
        gap = summary["own_minus_other_psnr"].get(m)
        diff = summary["paired_vs_" + reference].get(m, {}).get("psnr")

        lines.append(f"{m:<14} {format_ci(p, 2):>22} {format_ci(s, 4):>24} {format_ci(gap, 2):>22} {format_ci(diff, 2):>26}")
    if summary.get("paired_vs_mean"):
        lines.append(f"{'mean - method':<14} {'PSNR dB':>22} {'SSIM':>24} {'own-other PSNR':>22}")
        for m, d in summary["paired_vs_mean"].items():
            lines.append(f"{m:<14} {format_ci(d['psnr'], 2, '+'):>22} {format_ci(d['ssim'], 4, '+'):>24} "
                         f"{format_ci(d.get('own_minus_other'), 2, '+'):>22}")
    return "\n".join(lines)


def compare_reports(reports: dict[str, dict], method: str = "sample", reference: str | None = None) -> dict:
    """Paired per-take comparison of several ``syn2seq eval`` reports (e.g. the ablation's variants).

    reports: label -> a report written by ``syn2seq eval --out`` on the same takes. For each label: the mean
    of ``method`` ("sample", "mean" or a baseline) with its 95% CI; for each pair (or each label against
    ``reference``): the mean per-take difference ``a - b`` with its paired 95% CI, for PSNR and SSIM.
    """
    from .errors import Syn2SeqInputError

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
