"""Structure from motion on a video file: :func:`estimate_cameras_from_video` decodes only the frames that
:func:`~syn2seq_core.geometry.sfm.estimate_cameras` would sample, at its working size, in chunks, then runs it.

Here because it joins the two layers below it: video decoding (:mod:`.video`) and the geometry of structure from
motion (:mod:`syn2seq_core.geometry.sfm`, which works on frames in memory).
"""

from __future__ import annotations

import numpy as np

from ..base.errors import require
from ..geometry.sfm import (DEFAULT_LENS, DEFAULT_MAPPER, DEFAULT_MIN_REGISTERED, DEFAULT_SFM_SIZE, EstimatedCameras,
                            ProgressFn, _Clock, _estimate, _long_side_size, _to_uint8_hwc, sample_indices)
from .video import iter_video_chunks, probe_video


def estimate_cameras_from_video(path, *, static: bool = False, fov_deg: float | None = None,
                                focal: float | None = None, mapper: str = DEFAULT_MAPPER, stride: int = 1,
                                max_frames: int | None = None, time_limit_s: float | None = None,
                                progress: ProgressFn | None = None, lens: str = DEFAULT_LENS,
                                sfm_size: int = DEFAULT_SFM_SIZE, min_registered: float = DEFAULT_MIN_REGISTERED,
                                num_threads: int | None = None, seed: int = 0) -> EstimatedCameras:
    """:func:`estimate_cameras` for the video file ``path``: decodes only the sampled frames, at ``sfm_size``,
    in chunks (memory does not grow with the video's length). ``focal`` is in pixels of the video's frames.
    Returns one camera per frame of the video, at the video's size."""
    clock = _Clock(time_limit_s)
    info = probe_video(path)
    n = info.frames
    require(n >= 1, "video", "at least one frame", f"none in '{path}'")
    idx = sample_indices(n, stride, max_frames) if not static else [0]
    w, h = _long_side_size(info.width, info.height, sfm_size)
    wanted = set(idx)
    small: dict[int, np.ndarray] = {}
    frame = 0
    for chunk in iter_video_chunks(path, 16, stop=max(idx) + 1, size=(w, h), crop=None):
        for k in range(len(chunk)):
            if frame + k in wanted:
                small[frame + k] = _to_uint8_hwc(chunk[k:k + 1])[0]
        frame += len(chunk)
        clock.check("decoding the video")
    found = [i for i in idx if i in small]
    require(len(found) > 0, "video", "decodable frames", f"none decoded from '{path}'")
    n = max(n if len(found) == len(idx) else max(found) + 1, 1)  # the container may over-count its frames
    return _estimate([small[i] for i in found], found, n, info.width, info.height, static=static, fov_deg=fov_deg,
                     focal=focal, mapper=mapper, clock=clock, progress=progress, lens=lens,
                     min_registered=min_registered, num_threads=num_threads, seed=seed)
