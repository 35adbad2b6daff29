"""Camera pose files. PLACEHOLDER: being written (see issue 2, step 4)."""

from __future__ import annotations

KNOWN_FORMATS = ("syn2seq",)


def load_cameras(path, format="auto", **kwargs):
    raise NotImplementedError


def save_cameras(cams, path):
    raise NotImplementedError
