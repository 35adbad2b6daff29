"""The exo2ego workflow in ComfyUI's real frontend, in headless Chromium.

Opens ``workflows/exo2ego.json`` the way the template browser does (``app.loadGraphData``), checks that no
node type is missing and that the frontend's own "Export (API)" of it equals ``exo2ego_api.json``, queues
it from the page, waits until the camera-path widgets have drawn the path the nodes sent (3D, turned by a
drag; a double-click gives the top view), saves a
screenshot (``outputs/test_artifacts/exo2ego_camera_path.png``, or ``$SYN2SEQ_ARTIFACTS``), then cancels
the run. Skipped, with the reason, when Chromium, websocket-client or ComfyUI is absent.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from .cdp import Browser, find_chromium
from .harness import PACK_ROOT
from .workflow_format import strip_meta

WORKFLOW = PACK_ROOT / "workflows" / "exo2ego.json"
API_TWIN = PACK_ROOT / "workflows" / "api" / "exo2ego_api.json"
ARTIFACTS = Path(os.environ.get("SYN2SEQ_ARTIFACTS", PACK_ROOT / "outputs" / "test_artifacts"))
APP = "window.comfyAPI.app.app"


@pytest.fixture(scope="module")
def browser(comfy_server):
    exe = find_chromium()
    if exe is None:
        pytest.skip("no Chromium (Debian: apt-get install -y chromium)")
    pytest.importorskip("websocket", reason="websocket-client is not installed")
    with Browser(exe) as b:
        b.navigate(comfy_server.url)
        b.wait_for(f"!!(window.comfyAPI && {APP} && {APP}.graph && window.LiteGraph "
                   "&& LiteGraph.registered_node_types['Syn2SeqLoadTake'])", timeout=180)
        yield b


def _dialog_texts(browser) -> list[str]:
    return browser.evaluate("[...document.querySelectorAll('.p-dialog')].map(d => d.textContent)") or []


def _wait_until_drawn(browser, server, timeout: float) -> None:
    """Until both camera-path widgets have drawn; fails at once if the run ends in an error."""
    deadline = time.monotonic() + timeout
    drawn = "document.querySelectorAll('canvas[data-syn2seq-camera-path=\"drawn\"]').length"
    while time.monotonic() < deadline:
        if browser.evaluate(drawn) == 2:
            return
        for entry in server.get("/history").values():
            errors = [m[1] for m in entry.get("status", {}).get("messages", []) if m[0] == "execution_error"]
            assert not errors, json.dumps(errors, indent=1)[:3000]
        time.sleep(0.5)
    raise TimeoutError("the camera-path widgets were not drawn")


def test_exo2ego_opens_exports_runs_and_draws_the_camera_path(browser, comfy_server):
    workflow = json.loads(WORKFLOW.read_text(encoding="utf-8"))
    types = sorted({n["type"] for n in workflow["nodes"]})
    missing = browser.evaluate(f"{json.dumps(types)}.filter(t => !LiteGraph.registered_node_types[t])")
    assert missing == [], f"node types the frontend does not know: {missing}"

    browser.evaluate(f"{APP}.loadGraphData({json.dumps(workflow)}, true, true, 'exo2ego').then(() => true)")
    time.sleep(1.0)
    dialogs = _dialog_texts(browser)
    assert not [d for d in dialogs if "not found" in d.lower() or "missing" in d.lower()], dialogs
    assert browser.evaluate(f"{APP}.graph._nodes.length") == len(workflow["nodes"])

    exported = browser.evaluate(f"{APP}.graphToPrompt().then(p => p.output)")
    assert strip_meta(exported) == strip_meta(json.loads(API_TWIN.read_text(encoding="utf-8")))

    # Two camera-path widgets (take loader, sequence builder) exist before running, showing a hint.
    assert browser.evaluate("document.querySelectorAll('canvas[data-syn2seq-camera-path]').length") == 2

    browser.evaluate(f"{APP}.canvas.ds.scale = 1.0; {APP}.canvas.ds.offset = [10, 10]; "
                     f"{APP}.canvas.setDirty(true, true); true")
    browser.evaluate(f"{APP}.queuePrompt(0, 1).then(() => true)")
    try:
        _wait_until_drawn(browser, comfy_server, timeout=300)
        # The drawing has the exo (blue) and ego (red) strokes on it.
        colours = browser.evaluate("""
            [...document.querySelectorAll('canvas[data-syn2seq-camera-path="drawn"]')].map(c => {
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let blue = 0, red = 0;
                for (let i = 0; i < d.length; i += 4) {
                    if (d[i] < 110 && d[i + 2] > 200) blue++;
                    if (d[i] > 200 && d[i + 1] < 110 && d[i + 2] < 130) red++;
                }
                return [blue, red];
            })""")
        # The 3D view turns with a drag (pointer events on the first canvas) and switches to the top view on a
        # double-click; each changes the picture.
        picture = ("(() => { const c = document.querySelector('canvas[data-syn2seq-camera-path=\"drawn\"]'); "
                   "return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)"
                   ".reduce((a, v, i) => (a * 31 + v * (i % 7 + 1)) % 1000000007, 7); })()")
        view = "document.querySelector('canvas[data-syn2seq-camera-path=\"drawn\"]').dataset.syn2seqView"
        before, view_before = browser.evaluate(picture), browser.evaluate(view)
        browser.evaluate("""(() => {
            const c = document.querySelector('canvas[data-syn2seq-camera-path="drawn"]');
            const at = (type, x, y) => c.dispatchEvent(new PointerEvent(type, {clientX: x, clientY: y,
                                                                              pointerId: 1, bubbles: true}));
            at('pointerdown', 100, 100); at('pointermove', 160, 120); at('pointerup', 160, 120);
            return true; })()""")
        dragged = browser.evaluate(picture)
        time.sleep(0.5)
        shot = browser.screenshot(ARTIFACTS / "exo2ego_camera_path.png")
        print(f"\n[syn2seq] screenshot: {shot}")
        if os.environ.get("SYN2SEQ_SCREENSHOT"):  # the one committed to docs/images, on request
            browser.screenshot(Path(os.environ["SYN2SEQ_SCREENSHOT"]))
        browser.evaluate("document.querySelector('canvas[data-syn2seq-camera-path=\"drawn\"]')"
                         ".dispatchEvent(new MouseEvent('dblclick', {bubbles: true})) && true")
        top, view_after = browser.evaluate(picture), browser.evaluate(view)
    finally:
        comfy_server.interrupt()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            queue = comfy_server.get("/queue")
            if not queue["queue_running"] and not queue["queue_pending"]:
                break
            time.sleep(0.5)
    assert all(blue > 20 and red > 20 for blue, red in colours), colours
    assert view_before == "3d" and dragged != before, "dragging did not turn the 3D view"
    assert view_after == "top" and top != dragged
    errors = [c for c in browser.console if "syn2seq" in c.lower() and ("error" in c.lower() or "exception" in c)]
    assert not errors, errors
