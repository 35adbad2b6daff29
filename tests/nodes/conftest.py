"""Fixtures for the node-pack tests. Tests that need ComfyUI skip, with the reason, when it is absent."""

from __future__ import annotations

import pytest

from .harness import ComfyServer, find_comfyui


@pytest.fixture(scope="session")
def comfy_install():
    found = find_comfyui()
    if isinstance(found, str):
        pytest.skip(f"no ComfyUI: {found}")
    return found


@pytest.fixture(scope="session")
def comfy_server(comfy_install, tmp_path_factory):
    """One real ComfyUI server (CPU) for the session, with this pack and a private base directory."""
    base = tmp_path_factory.mktemp("comfyui-base")
    settings = base / "user" / "default"
    settings.mkdir(parents=True)
    # A new user gets the template browser on first load; the browser test wants the bare canvas.
    (settings / "comfy.settings.json").write_text('{"Comfy.TutorialCompleted": true}\n', encoding="utf-8")
    server = ComfyServer(comfy_install, base)
    try:
        server.start()
    except RuntimeError as e:
        pytest.fail(f"ComfyUI did not start: {e}")
    yield server
    server.stop()
