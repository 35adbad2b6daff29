"""Progress, previews and cancel for long core calls: a ComfyUI ProgressBar plus an interrupt check per step."""

from __future__ import annotations

PREVIEW_FRAMES = 8  # frames in a sampler preview strip


def previews_enabled() -> bool:
    """Whether the user wants sampler previews (``--preview-method`` other than ``none``). The network works in
    pixel space, so every method shows the same picture: the current clean estimate itself."""
    from comfy.cli_args import LatentPreviewMethod, args

    return args.preview_method != LatentPreviewMethod.NoPreviews


def x0_strip(info: dict, config, frames: int = PREVIEW_FRAMES):
    """A PIL image of the frames being generated in the sampler's current clean estimate (``info["x0"]`` in model
    space, ``info["generate"]`` the frames of this window being generated): up to ``frames`` of them, evenly
    spaced, side by side at the model's resolution. None when the step reports no generated frame."""
    import torch
    from PIL import Image

    from ..syn2seq_core.generation.pipeline import from_model_space

    x0, generate = info.get("x0"), info.get("generate")
    if x0 is None or generate is None or not bool(generate[0].any()):
        return None
    generate = generate[0]  # the first video of the batch
    index = torch.nonzero(generate).flatten()
    if len(index) > frames:
        index = index[torch.linspace(0, len(index) - 1, frames).round().long()]
    shown = from_model_space(x0[0, index.to(x0.device)].float(), config)  # [n, 3, H, W] in [0, 1]
    strip = torch.cat(list(shown), dim=-1)  # [3, H, n W]
    pixels = (strip * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(pixels)


def step_callback(total_hint: int, preview_config=None):
    """A ``callback(info)`` for core loops that report ``{"step": i, "total": n}`` once per step.

    It moves the node's progress bar and raises ComfyUI's InterruptProcessingException when the user
    pressed Cancel (or a client POSTed /interrupt), which stops the core loop at that step. With
    ``preview_config`` (the network's config) and previews enabled, each step also sends :func:`x0_strip` as the
    node's preview image (ComfyUI scales it to ``--preview-size``).
    """
    import comfy.model_management
    import comfy.utils

    bar = comfy.utils.ProgressBar(max(int(total_hint), 1))
    preview = preview_config is not None and previews_enabled()
    if preview:
        from comfy.cli_args import args

    def callback(info: dict) -> None:
        comfy.model_management.throw_exception_if_processing_interrupted()
        image = x0_strip(info, preview_config) if preview else None
        bar.update_absolute(int(info["step"]), int(info.get("total", total_hint)),
                            None if image is None else ("JPEG", image, args.preview_size))

    return callback


def count_callback(total_hint: int):
    """A ``progress(done, total)`` for core loops that count frames (interpolation)."""
    step = step_callback(total_hint)
    return lambda done, total: step({"step": done, "total": total})
