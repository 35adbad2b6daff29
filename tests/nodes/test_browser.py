"""The pack's frontend in ComfyUI's real frontend, in headless Chromium.

exo2ego: opens ``workflows/exo2ego.json`` the way the template browser does (``app.loadGraphData``), checks
that no node type is missing and that the frontend's own "Export (API)" of it equals ``exo2ego_api.json``,
queues it from the page, waits until the camera-path widgets have drawn the path the nodes sent (3D, turned
by a drag; a double-click gives the top view), saves a screenshot
(``outputs/test_artifacts/exo2ego_camera_path.png``, or ``$SYN2SEQ_ARTIFACTS``), then cancels the run.

Camera path: builds a graph of one ``Syn2SeqCameraPath`` node, runs it, checks that its widget drew the 3D
view (frusta and path), that a real mouse drag (CDP input events) rotates the picture without moving the
node, and that the button and a real double-click switch to the top view and back; with
``SYN2SEQ_SCREENSHOT=<file.png>`` it saves a screenshot of the node there (``docs/images/camera_path_3d.png``
was made so). Hostile payloads (markup in every string) are drawn as text on the canvas, never parsed as HTML.

Skipped, with the reason, when Chromium, websocket-client or ComfyUI is absent.
"""

from __future__ import annotations

import base64
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
WIDGET_JS = PACK_ROOT / "web" / "syn2seq_camera_path.js"
SCREENSHOT_ENV = "SYN2SEQ_SCREENSHOT"


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


# --- the camera-path builder's 3D widget ---------------------------------------------------------------------
def test_the_widget_code_never_parses_data_as_html():
    """Static half of the escaping check (the browser half is below): no HTML sinks in the widget code."""
    source = WIDGET_JS.read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                 "DOMParser", "createContextualFragment", "srcdoc"):
        assert sink not in source, f"{WIDGET_JS.name} uses {sink}"
    assert "textContent" in source


# JS helpers on the page: the camera-path node under test, its canvas, and pixel statistics of that canvas.
_PAGE_HELPERS = """
window.__s2s = {
  canvas: () => window.__s2sNode.widgets.find(w => w.name === 'camera_path').element.querySelector('canvas'),
  pixels: () => { const c = window.__s2s.canvas(); return c.getContext('2d').getImageData(0, 0, c.width, c.height); },
  stats: () => {
    const d = window.__s2s.pixels().data;
    let drawn = 0, blue = 0;
    for (let i = 0; i < d.length; i += 4) {
      if (Math.abs(d[i] - 0x20) + Math.abs(d[i + 1] - 0x22) + Math.abs(d[i + 2] - 0x26) > 24) drawn++;
      if (d[i] < 110 && d[i + 2] > 200) blue++;
    }
    return {drawn, blue, total: d.length / 4};
  },
  keep: () => { window.__s2sBefore = window.__s2s.pixels(); return true; },
  changed: () => {
    const a = window.__s2sBefore.data, b = window.__s2s.pixels().data;
    if (a.length !== b.length) return -1;
    let n = 0;
    for (let i = 0; i < a.length; i += 4) if (a[i] !== b[i] || a[i + 1] !== b[i + 1] || a[i + 2] !== b[i + 2]) n++;
    return n;
  },
};
true
"""


def _drag(browser, x0: float, y0: float, dx: float, dy: float, steps: int = 8) -> None:
    """A real left-button drag, as Chromium's input pipeline delivers it (pointer events included)."""
    mouse = "Input.dispatchMouseEvent"
    browser.call(mouse, type="mouseMoved", x=x0, y=y0)
    browser.call(mouse, type="mousePressed", x=x0, y=y0, button="left", buttons=1, clickCount=1)
    for k in range(1, steps + 1):
        browser.call(mouse, type="mouseMoved", x=x0 + dx * k / steps, y=y0 + dy * k / steps, button="left",
                     buttons=1)
    browser.call(mouse, type="mouseReleased", x=x0 + dx, y=y0 + dy, button="left", buttons=0, clickCount=1)


def _node_clip(browser) -> dict:
    """The node's rectangle on the page (title bar included), for a screenshot of just the node."""
    return browser.evaluate(f"""(() => {{
        const c = {APP}.canvas, n = window.__s2sNode, b = n.getBounding();
        const r = c.canvas.getBoundingClientRect(), s = c.ds.scale;
        const [x, y] = c.ds.convertOffsetToCanvas([b[0], b[1]]);
        return {{x: Math.max(0, r.left + x - 8), y: Math.max(0, r.top + y - 8), width: b[2] * s + 16,
                 height: b[3] * s + 16, scale: 1}};
    }})()""")


def test_camera_path_node_draws_in_3d_rotates_on_drag_and_escapes(browser, comfy_server):
    started = time.monotonic()
    assert browser.evaluate("!!LiteGraph.registered_node_types['Syn2SeqCameraPath']")
    # A viewport tall enough for the whole node (its widgets, the keyframes text and the 3D view).
    browser.call("Emulation.setDeviceMetricsOverride", width=1600, height=1500, deviceScaleFactor=1, mobile=False)
    try:
        _camera_path_node_checks(browser, comfy_server)
    finally:
        browser.call("Emulation.clearDeviceMetricsOverride")
    assert time.monotonic() - started < 60


def _camera_path_node_checks(browser, comfy_server):
    time.sleep(0.3)  # the frontend follows the window size
    browser.evaluate(f"""(() => {{
        {APP}.graph.clear();
        const n = LiteGraph.createNode('Syn2SeqCameraPath');
        n.pos = [40, 70];
        {APP}.graph.add(n);
        n.widgets.find(w => w.name === 'preset').value = 'keyframes';
        n.widgets.find(w => w.name === 'frames').value = 61;
        n.setSize([480, n.computeSize()[1] + 110]);
        window.__s2sNode = n;
        {APP}.canvas.ds.scale = 1.0; {APP}.canvas.ds.offset = [10, 10]; {APP}.canvas.setDirty(true, true);
        return true;
    }})()""")
    browser.evaluate(_PAGE_HELPERS)
    assert browser.evaluate("window.__s2s.canvas().dataset.syn2seqCameraPath") == "empty"

    before = set(comfy_server.get("/history"))
    browser.evaluate(f"{APP}.queuePrompt(0, 1).then(() => true)")
    browser.wait_for("window.__s2s.canvas().dataset.syn2seqCameraPath === 'drawn'", timeout=60)
    runs = [v for k, v in comfy_server.get("/history").items() if k not in before]
    assert len(runs) == 1 and runs[0]["status"]["status_str"] == "success", json.dumps(runs)[:3000]
    (ui,) = runs[0]["outputs"].values()
    (segment,) = ui["syn2seq_camera_path"][0]["segments"]
    assert segment["count"] == 61 and len(segment["centers"]) == len(segment["down"]) == len(segment["K"]) == 61
    time.sleep(0.3)  # the widget sizes its canvas to the node on the next animation frame

    assert browser.evaluate("window.__s2s.canvas().dataset.syn2seqView") == "3d"
    stats = browser.evaluate("window.__s2s.stats()")
    assert stats["total"] > 50_000, stats  # sized to the node (about 460 x 240 CSS pixels)
    assert stats["drawn"] > 0.03 * stats["total"] and stats["blue"] > 400, stats
    shot = os.environ.get(SCREENSHOT_ENV)
    if shot:
        data = browser.call("Page.captureScreenshot", format="png", clip=_node_clip(browser))["data"]
        Path(shot).parent.mkdir(parents=True, exist_ok=True)
        Path(shot).write_bytes(base64.b64decode(data))
        print(f"\n[syn2seq] screenshot: {shot}")

    # A real drag on the canvas rotates the view: the yaw changes and so does the picture.
    rect = browser.evaluate("(() => { const r = window.__s2s.canvas().getBoundingClientRect(); "
                            "return [r.left, r.top, r.width, r.height]; })()")
    x0, y0 = rect[0] + rect[2] / 2, rect[1] + rect[3] / 2
    assert browser.evaluate(f"document.elementFromPoint({x0}, {y0}) === window.__s2s.canvas()"), "canvas covered"
    yaw = browser.evaluate("window.__s2s.canvas().dataset.syn2seqYaw")
    browser.evaluate("window.__s2s.keep()")
    _drag(browser, x0, y0, 120, 40)
    browser.wait_for(f"window.__s2s.canvas().dataset.syn2seqYaw !== '{yaw}'", timeout=5)
    time.sleep(0.2)
    assert abs(float(browser.evaluate("window.__s2s.canvas().dataset.syn2seqYaw")) - (float(yaw) - 1.2)) < 0.05
    assert browser.evaluate("window.__s2s.changed()") > 500
    assert browser.evaluate("window.__s2s.stats().blue") > 400
    node_pos = browser.evaluate("[...window.__s2sNode.pos]")
    assert node_pos == [40, 70], f"the drag moved the node instead of the view: {node_pos}"

    # The top view is one click away, and back.
    browser.evaluate("window.__s2s.keep(); window.__s2s.canvas().parentElement.querySelector('button').click(); true")
    assert browser.evaluate("window.__s2s.canvas().dataset.syn2seqView") == "top"
    assert browser.evaluate("window.__s2s.changed()") > 500
    assert browser.evaluate("window.__s2s.canvas().parentElement.querySelector('button').textContent") == "3D view"
    # A real double-click switches back to 3D (and does not move the node).
    for count in (1, 2):
        for kind in ("mousePressed", "mouseReleased"):
            browser.call("Input.dispatchMouseEvent", type=kind, x=x0, y=y0, button="left",
                         buttons=1 if kind == "mousePressed" else 0, clickCount=count)
    browser.wait_for("window.__s2s.canvas().dataset.syn2seqView === '3d'", timeout=5)
    assert browser.evaluate("[...window.__s2sNode.pos]") == [40, 70]

    # Hostile payloads: markup in every string, junk numbers. Drawn as text; nothing is parsed as HTML.
    hostile = {"segments": [{
        "role": '<img src=x onerror="window.__syn2seqXss=1">', "count": "<b>x</b>",
        "centers": [[0, 0, 0], [1, "<script>window.__syn2seqXss=2</script>", 2], [None, 1, 1], [1, 1, 1], "<svg>"],
        "forward": [[0, 1, 0], [1, 0, 0], [0, 0, 1], ["<i>", 0, 0]],
        "down": '<svg onload="window.__syn2seqXss=3">', "K": [[0, 0, 0, 0], [1, 1, 0.5, 0.5]],
    }, {"role": "</canvas><iframe src=javascript:window.__syn2seqXss=4>", "centers": "<p>"}]}
    browser.evaluate(f"window.__s2sNode.syn2seqCameraPath({json.dumps(hostile)}); true")
    time.sleep(0.3)
    assert browser.evaluate("window.__syn2seqXss === undefined")
    container = "window.__s2s.canvas().parentElement"
    assert browser.evaluate(f"[...{container}.querySelectorAll('*')].map(e => e.tagName)") == ["CANVAS", "BUTTON"]
    assert browser.evaluate("document.querySelectorAll('img[src=x], iframe, svg[onload]').length") == 0
    assert browser.evaluate("window.__s2s.stats().drawn") > 100  # the valid cameras are still drawn
    errors = [c for c in browser.console if "syn2seq" in c.lower() and ("error" in c.lower() or "exception" in c)]
    assert not errors, errors


# --- the estimate-cameras workflow's widget on a real clip -----------------------------------------------------
REAL_CLIP = PACK_ROOT / "tests" / "fixtures" / "bikes_wall_55f_320x136.mp4"
ESTIMATE_SCREENSHOT = ARTIFACTS / "estimate_cameras_camera_path.png"


def test_estimate_cameras_draws_the_track_of_a_real_clip(browser, comfy_server):
    """The first half of ``workflows/estimate_cameras.json`` (Load Video -> Get Video Components -> Syn2Seq Estimate
    Cameras) on a real camera-moving clip (tests/fixtures/NOTICE.md): the node's widget draws the estimated track of
    all 55 frames; a screenshot of the node goes to ``outputs/test_artifacts/estimate_cameras_camera_path.png``
    (``$SYN2SEQ_ARTIFACTS``). Needs pycolmap in ComfyUI's Python (55 sampled frames are beyond the OpenCV
    fallback); skipped, saying so, without it."""
    import shutil
    import subprocess

    if subprocess.run([str(comfy_server.install.python), "-c", "import pycolmap"], capture_output=True).returncode:
        pytest.skip("pycolmap is not installed in ComfyUI's Python (scripts/setup_comfyui.sh installs it)")
    shutil.copy(REAL_CLIP, comfy_server.input_dir / REAL_CLIP.name)
    browser.call("Emulation.setDeviceMetricsOverride", width=1600, height=1300, deviceScaleFactor=1, mobile=False)
    try:
        time.sleep(0.3)
        browser.evaluate(f"""(() => {{
            {APP}.graph.clear();
            const load = LiteGraph.createNode('LoadVideo'), parts = LiteGraph.createNode('GetVideoComponents');
            const est = LiteGraph.createNode('Syn2SeqEstimateCameras');
            load.pos = [20, 60]; parts.pos = [20, 520]; est.pos = [380, 60];
            for (const n of [load, parts, est]) {APP}.graph.add(n);
            load.widgets.find(w => w.name === 'file').value = {json.dumps(REAL_CLIP.name)};
            load.connect(0, parts, 0);
            parts.connect(0, est, 0);
            est.setSize([520, est.computeSize()[1] + 260]);
            window.__s2sNode = est;
            {APP}.canvas.ds.scale = 1.0; {APP}.canvas.ds.offset = [10, 10]; {APP}.canvas.setDirty(true, true);
            return true;
        }})()""")
        browser.evaluate(_PAGE_HELPERS)
        before = set(comfy_server.get("/history"))
        browser.evaluate(f"{APP}.queuePrompt(0, 1).then(() => true)")
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline:
            runs = [v for k, v in comfy_server.get("/history").items() if k not in before]
            if runs and runs[0]["status"].get("completed") is not None:
                break
            time.sleep(1.0)
        assert len(runs) == 1 and runs[0]["status"]["status_str"] == "success", json.dumps(runs)[:3000]
        browser.wait_for("window.__s2s.canvas().dataset.syn2seqCameraPath === 'drawn'", timeout=30)
        outputs = [o for o in runs[0]["outputs"].values() if "syn2seq_camera_path" in o]
        (segment,) = outputs[0]["syn2seq_camera_path"][0]["segments"]
        assert segment["count"] == 55 and len(segment["centers"]) == 55
        time.sleep(0.5)
        stats = browser.evaluate("window.__s2s.stats()")
        assert stats["drawn"] > 0.02 * stats["total"], stats
        data = browser.call("Page.captureScreenshot", format="png", clip=_node_clip(browser))["data"]
        ESTIMATE_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        ESTIMATE_SCREENSHOT.write_bytes(base64.b64decode(data))
        print(f"\n[syn2seq] screenshot: {ESTIMATE_SCREENSHOT}")
    finally:
        browser.call("Emulation.clearDeviceMetricsOverride")
