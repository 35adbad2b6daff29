"""Progress and cancel for long core calls: a ComfyUI ProgressBar plus an interrupt check per step."""

from __future__ import annotations


def step_callback(total_hint: int):
    """A ``callback(info)`` for core loops that report ``{"step": i, "total": n}`` once per step.

    It moves the node's progress bar and raises ComfyUI's InterruptProcessingException when the user
    pressed Cancel (or a client POSTed /interrupt), which stops the core loop at that step.
    """
    import comfy.model_management
    import comfy.utils

    bar = comfy.utils.ProgressBar(max(int(total_hint), 1))

    def callback(info: dict) -> None:
        comfy.model_management.throw_exception_if_processing_interrupted()
        bar.update_absolute(int(info["step"]), int(info.get("total", total_hint)))

    return callback


def count_callback(total_hint: int):
    """A ``progress(done, total)`` for core loops that count frames (interpolation)."""
    step = step_callback(total_hint)
    return lambda done, total: step({"step": done, "total": total})
