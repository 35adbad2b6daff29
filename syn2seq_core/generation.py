"""Exo2Ego / Ego2Exo on a take: read the source view, build the sequence, generate, score, write.

The one function both the CLI (``syn2seq exo2ego|ego2exo|demo|eval``) and the ComfyUI nodes call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from .errors import check_choice
from .pipeline import Syn2SeqModel, resize_frames
from .sequence import DIRECTIONS, Syn2SeqSequence, build_sequence

OTHER = {"exo": "ego", "ego": "exo"}


@dataclass(frozen=True, eq=False)
class TakeResult:
    """What a generation run produced, at the model's resolution.

    source: [Ts, 3, h, w] the context view; generated: [Tg, 3, h, w] the generated view; target: [Tg, 3, h, w]
    its ground truth or None; sequence: the full generated sequence; metrics: evaluate_frames report or None;
    output_size: (width, height) of the generated view's own video (or its cameras' image size);
    mean: [Tg, 3, h, w] the model's one-shot conditional mean, when asked for; mean_metrics: its report.
    """

    take_name: str
    direction: str
    sequence: Syn2SeqSequence
    source: Tensor
    generated: Tensor
    target: Tensor | None
    metrics: dict | None
    output_size: tuple[int, int]
    fps: float
    mean: Tensor | None = None
    mean_metrics: dict | None = None


def views_of(direction: str) -> tuple[str, str]:
    check_choice(direction, DIRECTIONS, "direction")
    return ("exo", "ego") if direction == "exo2ego" else ("ego", "exo")


def take_sequence(take, model: Syn2SeqModel, direction: str = "exo2ego", *, n_transition: int | None = None,
                  with_target: bool = True) -> tuple[Syn2SeqSequence, Tensor | None]:
    """The inference sequence of a take at the model's size, and the target view's ground truth (or None)."""
    src, tgt = views_of(direction)
    h, w = model.size
    frames, src_cams = take.read_view(src, size=(w, h))
    tgt_cams = take.view_cameras(tgt, size=(w, h))
    target = None
    if with_target and take.has_video(tgt):
        target, _ = take.read_view(tgt, size=(w, h))
    cams = {src: src_cams, tgt: tgt_cams}
    seq = build_sequence(cams["exo"], cams["ego"], **{f"{src}_frames": frames},
                         n_transition=model.transition_frames if n_transition is None else n_transition,
                         mode=model.sequence_mode(direction), direction=direction)
    return seq, target


def generate_take(take, model: Syn2SeqModel, direction: str = "exo2ego", *, steps: int = 25,
                  scheduling: str = "full_sequence", guidance: str = "conditional", guidance_scale: float = 1.0,
                  seed: int = 0, eta: float = 0.0, n_transition: int | None = None, callback=None, lpips_weights=None,
                  with_mean: bool = False, mean_draws: int = 8) -> TakeResult:
    """Generate the other view of ``take`` (a ``data.takes.Take``); the take is read once. ``with_mean``:
    also the model's conditional-mean estimate (``result.mean``; one-shot x0 averaged over ``mean_draws``
    noise draws, see ``Syn2SeqModel.predict_mean``), next to the sample."""
    from .metrics import evaluate_frames

    src, tgt = views_of(direction)
    seq, target = take_sequence(take, model, direction, n_transition=n_transition)
    out = model.generate(seq, steps=steps, scheduling=scheduling, guidance=guidance,
                         guidance_scale=guidance_scale, seed=seed, eta=eta, callback=callback)
    mean = model.predict_mean(seq, seed=seed, draws=mean_draws).target_frames() if with_mean else None
    generated = out.target_frames()
    metrics = evaluate_frames(generated, target, lpips_weights) if target is not None else None
    mean_metrics = evaluate_frames(mean, target, lpips_weights) if target is not None and mean is not None else None
    info = take.info(tgt)
    cams = take.cameras(tgt)
    size = (info.width, info.height) if info is not None else (cams.width, cams.height)
    return TakeResult(take.name, direction, out, seq.frames[seq.context_mask >= 1], generated, target, metrics,
                      size, float(take.fps), mean, mean_metrics)


def side_by_side(result: TakeResult) -> Tensor:
    """[T, 3, h, k w]: source | generated | conditional mean (when computed) | ground truth (when known).

    Exo and ego are synchronous, so frame i of each panel is the same moment; a shorter panel holds its
    last frame.
    """
    panels = [result.source, result.generated] + [p for p in (result.mean, result.target) if p is not None]
    T = max(len(p) for p in panels)
    panels = [torch.cat([p, p[-1:].expand(T - len(p), -1, -1, -1)]) if len(p) < T else p for p in panels]
    return torch.cat(panels, dim=-1)


def write_result(result: TakeResult, out_dir: str | Path, extra: dict | None = None) -> dict[str, Path]:
    """Write ``<view>_generated.mp4`` (the generated view at its own video's size), ``side_by_side.mp4``
    and ``metrics.json`` into ``out_dir`` (and ``<view>_mean.mp4`` when the result has a conditional mean);
    each file appears complete or not at all."""
    from .video_io import write_video

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _, tgt = views_of(result.direction)
    w, h = result.output_size
    paths = {"video": out / f"{tgt}_generated.mp4", "side_by_side": out / "side_by_side.mp4",
             "metrics": out / "metrics.json"}
    if result.mean is not None:
        paths["mean_video"] = out / f"{tgt}_mean.mp4"
    for key, frames in (("video", result.generated), ("mean_video", result.mean)):
        if frames is not None:
            write_video(paths[key], resize_frames(frames, h + h % 2, w + w % 2), fps=result.fps)
    sbs = side_by_side(result)
    scale = max(1, 256 // sbs.shape[-2])
    sbs = resize_frames(sbs, sbs.shape[-2] * scale, sbs.shape[-1] * scale)
    write_video(paths["side_by_side"], sbs, fps=result.fps)
    report = {"take": result.take_name, "direction": result.direction, "generated_frames": len(result.generated),
              "generated_size": [w, h], "model_size": list(result.generated.shape[-2:][::-1]),
              "metrics": result.metrics if result.metrics is not None else "unavailable: no ground-truth video",
              **({"mean_metrics": result.mean_metrics} if result.mean_metrics is not None else {}),
              **(extra or {})}
    write_json(paths["metrics"], report)
    return paths


def write_json(path: Path, data) -> None:
    """Atomic JSON write."""
    from .atomic import write_text_atomic

    write_text_atomic(path, json.dumps(data, indent=2) + "\n")
