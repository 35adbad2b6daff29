"""Exo2Ego / Ego2Exo on a take: read the source view, build the sequence, generate, score, write.

:func:`run_take` (``syn2seq exo2ego|ego2exo|demo``) and :func:`syn2seq_core.evaluation.run.score_take`
(``syn2seq eval``) stream: :func:`iter_take` reads, generates and hands out a take in blocks, so memory does
not grow with its length. :func:`generate_take` returns a whole (short) take's tensors for library callers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from ..base import conventions as C
from ..base.errors import check_choice, require
from ..io.video import VideoWriter
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


def with_cue(seq: Syn2SeqSequence, take, model: Syn2SeqModel, source_frames: Tensor | None = None
             ) -> Syn2SeqSequence:
    """``seq`` with the cue ``model`` reads (its ``depth_warp`` cue from the take's source-view depth), or ``seq``
    itself for a model without one; for a take without the source view's depth, the empty cue if the model runs
    without it, else an error naming the model (:meth:`Syn2SeqModel.without_cue`). source_frames: the source view
    at the model's size (default: read)."""
    if model.config.cue == "none":
        return seq
    h, w = model.size
    src = "exo" if seq.direction == "exo2ego" else "ego"
    if take.depth(src) is None:
        return model.without_cue(seq, f"take '{take.path}' without {src} depth ({src}_depth.safetensors)")
    if source_frames is None:
        source_frames = take.read_view(src, size=(w, h))[0]
    return seq.with_depth_cue(take.read_depth(src, size=(w, h)), source_frames)


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
    return with_cue(seq, take, model, frames), target


def generate_take(take, model: Syn2SeqModel, direction: str = "exo2ego", *, steps: int | None = None,
                  scheduling: str = "full_sequence", guidance: str = "conditional", guidance_scale: float = 1.0,
                  stabilization: float = 0.0, seed: int = 0, eta: float | None = None, n_transition: int | None = None,
                  callback=None, lpips_weights=None,
                  with_mean: bool = False, mean_draws: int = 8) -> TakeResult:
    """Generate the other view of ``take`` (a ``data.takes.Take``) in memory (for long takes, :func:`iter_take`
    or :func:`run_take` stream); the take is read once. ``with_mean``:
    also the model's conditional-mean estimate (``result.mean``; one-shot x0 averaged over ``mean_draws``
    noise draws, see ``Syn2SeqModel.predict_mean``), next to the sample."""
    from ..metrics.frames import evaluate_frames

    src, tgt = views_of(direction)
    seq, target = take_sequence(take, model, direction, n_transition=n_transition)
    out = model.generate(seq, steps=steps, scheduling=scheduling, guidance=guidance,
                         guidance_scale=guidance_scale, stabilization=stabilization, seed=seed, eta=eta,
                         callback=callback)
    mean = model.predict_mean(seq, seed=seed, draws=mean_draws).target_frames() if with_mean else None
    generated = out.target_frames()
    metrics = evaluate_frames(generated, target, lpips_weights) if target is not None else None
    mean_metrics = evaluate_frames(mean, target, lpips_weights) if target is not None and mean is not None else None
    info = take.info(tgt)
    cams = take.cameras(tgt)
    size = (info.width, info.height) if info is not None else (cams.width, cams.height)
    return TakeResult(take.name, direction, out, seq.frames[seq.context_mask >= 1], generated, target, metrics,
                      size, float(take.fps), mean, mean_metrics)


# --- streaming: long takes in bounded memory ------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class TakeBlock:
    """Frames ``[start, start + n)`` of a take's timeline at the model's size, each ``[n, 3, h, w]``: the source
    view, the generated view, its conditional mean (or None) and its ground truth (or None). A view shorter
    than the timeline holds its last frame; the first ``scored`` frames of the block are generated frames
    (0 once the generated view has ended), the ones metrics use."""

    start: int
    source: Tensor
    generated: Tensor
    mean: Tensor | None
    target: Tensor | None
    scored: int


class _Held:
    """Frames of a chunk iterator taken ``n`` at a time; after the last frame, the last frame repeats."""

    def __init__(self, chunks):
        self._chunks, self._pending, self._last = iter(chunks), [], None

    def take(self, n: int) -> Tensor:
        parts, have = self._pending, sum(len(p) for p in self._pending)
        while have < n:
            part = next(self._chunks, None)
            if part is None:
                break
            if len(part):
                parts.append(part)
                have += len(part)
        if have < n:
            last = parts[-1][-1:] if parts else self._last
            require(last is not None, "video", "at least one decodable frame", "none")
            parts.append(last.expand(n - have, -1, -1, -1))
        frames = torch.cat(parts) if len(parts) > 1 else parts[0]
        out, rest = frames[:n], frames[n:]
        self._pending = [rest] if len(rest) else []
        self._last = out[-1:]
        return out


def _source_reader(take, view: str, size: tuple[int, int], n: int, frames: Tensor | None = None):
    """read(start, end) -> [end - start, 3, h, w]: frames of ``view`` at ``size`` (w, h), zeros past its end;
    from ``frames`` (the whole view, already read) when given, else decoded per call."""
    def read(start: int, end: int) -> Tensor:
        out = torch.zeros(end - start, 3, size[1], size[0])
        stop = min(end, n)
        if start < stop:
            part = frames[start:stop] if frames is not None else take.read_view(view, size=size, start=start,
                                                                                 stop=stop)[0]
            out[:len(part)] = part
        return out
    return read


def iter_take(take, model: Syn2SeqModel, direction: str = "exo2ego", *, steps: int | None = None,
              scheduling: str = "full_sequence", guidance: str = "conditional", guidance_scale: float = 1.0,
              stabilization: float = 0.0, seed: int = 0, eta: float | None = None, n_transition: int | None = None,
              callback=None,
              with_mean: bool = False, mean_draws: int = 8, with_target: bool = True,
              chunk: int = 16) -> Iterator[TakeBlock]:
    """Generate the other view of ``take`` and stream it with its source, mean and ground truth in
    :class:`TakeBlock` blocks of ``chunk`` frames. The same sampling as :func:`generate_take`, but memory is
    bounded by the model's window and one chunk, whatever the length of the take: the source view is decoded per
    window, generated frames leave as they are finished, the views are decoded chunk by chunk alongside.
    ``with_mean`` needs a sequence within the model's window (checked before any work)."""
    src, tgt = views_of(direction)
    h, w = model.size
    n_src = take.num_frames(src)
    cams = {src: take.view_cameras(src, size=(w, h)), tgt: take.view_cameras(tgt, size=(w, h))}
    seq = build_sequence(cams["exo"], cams["ego"], size=(h, w), mode=model.sequence_mode(direction),
                         direction=direction,
                         n_transition=model.transition_frames if n_transition is None else n_transition)
    frames = None
    if model.config.cue != "none":  # a cue model needs the source view whole (at the model's size) up front
        frames = take.read_view(src, size=(w, h))[0]
        seq = with_cue(seq, take, model, frames)
    read = _source_reader(take, src, (w, h), n_src, frames)
    if with_mean:
        require(len(seq) <= model.window, "--mean", f"a sequence within the model's window ({model.window} frames)",
                f"{len(seq)} frames", "The conditional mean is one-shot; generate long takes without --mean")
    return _take_blocks(take, model, seq, read, src, tgt, n_src, dict(
        steps=steps, scheduling=scheduling, guidance=guidance, guidance_scale=guidance_scale,
        stabilization=stabilization, seed=seed, eta=eta, callback=callback), with_mean, mean_draws, with_target, chunk)


def _take_blocks(take, model, seq, read, src, tgt, n_src, sampling, with_mean, mean_draws, with_target, chunk):
    h, w = model.size
    first_target = int(seq.indices(seq.target_role)[0])
    n_tgt = len(seq) - first_target

    def generated():
        for index, frames in model.generate_stream(seq, read_frames=read, **sampling):
            keep = [k for k, i in enumerate(index) if i >= first_target]
            if keep:
                yield frames[keep]

    mean = None
    if with_mean:
        ctx = (seq.context_mask >= C.MASK_CONTEXT)
        full = replace(seq, frames=torch.where(ctx[:, None, None, None], read(0, len(seq)), 0.0), known=ctx)
        mean = _Held([model.predict_mean(full, seed=sampling["seed"], draws=mean_draws).target_frames()])
    target = None
    if with_target and take.has_video(tgt):
        target = _Held(take.iter_view(tgt, chunk, size=(w, h))[0])
    source, gen = _Held(take.iter_view(src, chunk, size=(w, h))[0]), _Held(generated())
    total = max(n_src, n_tgt)
    for start in range(0, total, chunk):
        n = min(chunk, total - start)
        yield TakeBlock(start, source.take(n), gen.take(n), None if mean is None else mean.take(n),
                        None if target is None else target.take(n), max(0, min(n, n_tgt - start)))


class ResultWriter:
    """One take's result set, written as :class:`TakeBlock` blocks arrive into ``folder`` (normally the
    temporary folder of :func:`syn2seq_core.io.atomic.result_dir`): ``<view>_generated.mp4`` (the generated view
    at ``output_size``), ``<view>_mean.mp4`` when there is a mean, ``side_by_side.mp4`` (source | generated |
    mean | ground truth, scaled up to about 256 pixels high) and, on :meth:`close`, ``metrics.json``."""

    def __init__(self, folder: str | Path, direction: str, output_size: tuple[int, int], fps: float):
        self.folder, self.direction, self.output_size, self.fps = Path(folder), direction, output_size, fps
        _, self.tgt = views_of(direction)
        self.paths = {"video": self.folder / f"{self.tgt}_generated.mp4",
                      "side_by_side": self.folder / "side_by_side.mp4", "metrics": self.folder / "metrics.json"}
        self._writers: dict[str, VideoWriter] = {}
        self.frames = 0

    @classmethod
    def for_take(cls, folder: str | Path, take, direction: str) -> "ResultWriter":
        """A writer for ``take``'s generated view at the size of its own video (or of its cameras' images)."""
        _, tgt = views_of(direction)
        info, cams = take.info(tgt), take.cameras(tgt)
        size = (info.width, info.height) if info is not None else (cams.width, cams.height)
        return cls(folder, direction, size, float(take.fps))

    def _writer(self, key: str):
        if key not in self._writers:
            self._writers[key] = VideoWriter(self.paths[key], fps=self.fps)
        return self._writers[key]

    def add(self, block: TakeBlock) -> None:
        w, h = self.output_size
        if block.scored:
            self._writer("video").write(resize_frames(block.generated[:block.scored], h + h % 2, w + w % 2))
            if block.mean is not None:
                self.paths["mean_video"] = self.folder / f"{self.tgt}_mean.mp4"
                self._writer("mean_video").write(resize_frames(block.mean[:block.scored], h + h % 2, w + w % 2))
            self.frames += block.scored
        panels = [block.source, block.generated] + [p for p in (block.mean, block.target) if p is not None]
        sbs = torch.cat(panels, dim=-1)
        scale = max(1, 256 // sbs.shape[-2])
        self._writer("side_by_side").write(resize_frames(sbs, sbs.shape[-2] * scale, sbs.shape[-1] * scale))

    def report(self, take_name: str, model: Syn2SeqModel, metrics: dict | None, mean_metrics: dict | None = None,
               extra: dict | None = None) -> dict:
        """The ``metrics.json`` of this result set."""
        return {"take": take_name, "direction": self.direction, "generated_frames": self.frames,
                "generated_size": list(self.output_size), "model_size": list(model.size[::-1]),
                "metrics": metrics if metrics is not None else "unavailable: no ground-truth video",
                **({"mean_metrics": mean_metrics} if mean_metrics is not None else {}), **(extra or {})}

    def close(self, report: dict) -> dict[str, Path]:
        """Finish the videos and write ``metrics.json`` (``report``); returns the paths."""
        for writer in self._writers.values():
            writer.close()
        write_json(self.paths["metrics"], report)
        return dict(self.paths)

    def abort(self) -> None:
        for writer in self._writers.values():
            writer.abort()


def run_take(take, model: Syn2SeqModel, direction: str, out_dir: str | Path, *, lpips_weights=None,
             extra: dict | None = None, chunk: int = 16, **options) -> dict:
    """Generate the other view of ``take`` and write its result set into ``out_dir`` (``<view>_generated.mp4``,
    ``side_by_side.mp4``, ``metrics.json``, ``<view>_mean.mp4`` with ``with_mean``), streaming
    (:func:`iter_take`), so memory does not grow with the length of the take. The set is built in a temporary
    folder beside ``out_dir`` and moved into place at the end (:func:`syn2seq_core.io.atomic.result_dir`): the
    folder holds the earlier set or the new one, never a mix; an unwritable destination fails before any work.
    options: as :func:`iter_take`. Returns ``{"paths": ..., "report": ...}`` (paths inside ``out_dir``)."""
    from ..io.atomic import result_dir
    from ..metrics.frames import FrameScores

    with result_dir(out_dir) as folder:
        blocks = iter_take(take, model, direction, chunk=chunk, **options)
        writer = ResultWriter.for_take(folder, take, direction)
        scores = {"sample": FrameScores(lpips_weights), "mean": FrameScores(lpips_weights)}
        try:
            for block in blocks:
                writer.add(block)
                if block.target is not None and block.scored:
                    k = block.scored
                    scores["sample"].add(block.generated[:k], block.target[:k])
                    if block.mean is not None:
                        scores["mean"].add(block.mean[:k], block.target[:k])
            metrics, mean_metrics = (s.report() if s.frames else None for s in (scores["sample"], scores["mean"]))
            report = writer.report(take.name, model, metrics, mean_metrics, extra)
            paths = writer.close(report)
        except BaseException:
            writer.abort()
            raise
    out = Path(out_dir)
    return {"paths": {k: out / p.name for k, p in paths.items()}, "report": report}


def write_json(path: Path, data) -> None:
    """Atomic JSON write."""
    from ..io.atomic import write_text_atomic

    write_text_atomic(path, json.dumps(data, indent=2) + "\n")
