// Syn2Seq frontend extension: the camera path on the camera and sequence nodes, drawn in 3D (a perspective
// view of the camera frusta and the path, rotated by dragging) or from the top (the x-y plane; double-click
// or the button switches), and the metrics report on the evaluate node.
//
// Data comes only from the node's UI payload (`ui` of io.NodeOutput on the Python side):
//   {"syn2seq_camera_path": [{"segments": [{"role": str, "count": int,
//                                          "centers": [[x, y, z], ...], "forward": [[x, y, z], ...],
//                                          "down": [[x, y, z], ...],            (optional: camera y axis)
//                                          "K": [[fx/W, fy/H, cx/W, cy/H], ...]  (optional)}]}]}
//   {"text": [str]}                                   (Syn2SeqEvaluate)
// World z is up; cameras use OpenCV axes (x right, y down, z forward). Without "down" a camera is drawn
// without roll; without "K" with a 60-degree square frustum.
// Everything is drawn on a <canvas> or set with textContent: no server data is ever parsed as HTML.

import { app } from "../../scripts/app.js";

const PATH_KEY = "syn2seq_camera_path";
const PATH_NODES = new Set(["Syn2SeqLoadTake", "Syn2SeqLoadCameras", "Syn2SeqTransitionPoses", "Syn2SeqBuildSequence",
    "Syn2SeqCameraPath", "Syn2SeqWanCameraEmbedding", "Syn2SeqEstimateCameras"]);
const TEXT_NODES = new Set(["Syn2SeqEvaluate"]);
const WIDGET_HEIGHT = 250;
const MAX_ARROWS = 48; // view-direction ticks per segment (top view)
const MAX_FRUSTA = 12; // frusta per segment (3D view); 7 for a camera that stays put
const MAX_SEGMENTS = 8;
const MAX_POINTS = 4096; // per list: more than the server sends (256)
const BACKGROUND = "#202226";
const COLORS = {
    exo: "#4f9cf7", source: "#4f9cf7", cameras: "#4f9cf7",
    transition: "#f5b642",
    ego: "#f2555a", target: "#f2555a",
};
const FALLBACK_COLORS = ["#7bd88f", "#c792ea", "#89ddff"];
const DEFAULT_K = [0.866, 0.866, 0.5, 0.5];
const PITCH_LIMIT = 1.45; // radians; the orbiting view never reaches the pole

export function defaultView() {
    return { mode: "3d", yaw: -2.1, pitch: 0.5 };
}

// --- payload cleaning ------------------------------------------------------------------------------------
function finiteTuples(points, n) {
    const out = [];
    if (!Array.isArray(points)) return out;
    for (const p of points.slice(0, MAX_POINTS)) {
        let ok = Array.isArray(p) && p.length >= n;
        for (let k = 0; ok && k < n; k++) ok = Number.isFinite(p[k]);
        out.push(ok ? p.slice(0, n).map(Number) : null);
    }
    return out;
}

function cleanSegments(payload) {
    const segments = Array.isArray(payload?.segments) ? payload.segments : [];
    return segments.slice(0, MAX_SEGMENTS).map((s, i) => ({
        role: String(s?.role ?? "").slice(0, 24),
        count: Number.isFinite(s?.count) ? s.count : 0,
        centers: finiteTuples(s?.centers, 3),
        forward: finiteTuples(s?.forward, 3),
        down: finiteTuples(s?.down, 3),
        K: finiteTuples(s?.K, 4),
        color: COLORS[String(s?.role)] ?? FALLBACK_COLORS[i % FALLBACK_COLORS.length],
    }));
}

// --- small vector maths ----------------------------------------------------------------------------------
const add = (a, b) => [a[0] + b[0], a[1] + b[1], a[2] + b[2]];
const sub = (a, b) => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
const mul = (a, s) => [a[0] * s, a[1] * s, a[2] * s];
const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
const norm = (a) => Math.hypot(a[0], a[1], a[2]);
const unit = (a) => { const n = norm(a); return n > 1e-12 ? mul(a, 1 / n) : null; };

function niceStep(x) {
    const p = 10 ** Math.floor(Math.log10(x));
    const m = x / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

// The frustum of one camera: apex, the 4 image corners at `depth`, and the "up" mark above the top edge.
function frustum(c, f, d, K, depth) {
    f = unit(f);
    if (!f) return null;
    let down = d ? unit(sub(d, mul(f, dot(d, f)))) : null;
    if (!down) { // no roll: image x horizontal, image y pointing down in the world (z up)
        const right = unit(cross(f, [0, 0, 1])) ?? [1, 0, 0];
        down = cross(f, right);
    }
    const right = cross(down, f);
    const [fx, fy, cx, cy] = K && K[0] > 1e-6 && K[1] > 1e-6 ? K : DEFAULT_K;
    const lateral = Math.max(Math.abs(cx / fx), Math.abs((1 - cx) / fx), Math.abs(cy / fy), Math.abs((1 - cy) / fy));
    depth = depth / Math.max(1, lateral / 0.8); // very wide lenses: keep the frustum compact
    const at = (u, v) => add(c, mul(add(f, add(mul(right, (u - cx) / fx), mul(down, (v - cy) / fy))), depth));
    const corners = [at(0, 0), at(1, 0), at(1, 1), at(0, 1)];
    const topMid = at(0.5, 0);
    const halfTop = mul(sub(corners[1], corners[0]), 0.25);
    const tip = sub(topMid, mul(down, norm(halfTop) * 1.2));
    return { apex: c, corners, up: [sub(topMid, halfTop), add(topMid, halfTop), tip] };
}

function sampleIndices(n, max) {
    if (n <= max) return [...Array(n).keys()];
    const out = [];
    for (let k = 0; k < max; k++) out.push(Math.round((k * (n - 1)) / (max - 1)));
    return [...new Set(out)];
}

// --- drawing ---------------------------------------------------------------------------------------------
function drawLegend(ctx, w, h, segments) {
    let lx = 8;
    for (const seg of segments) {
        const label = `${seg.role} (${seg.count})`;
        ctx.fillStyle = seg.color;
        ctx.fillRect(lx, h - 12, 8, 8);
        ctx.fillStyle = "#d0d4d8";
        ctx.fillText(label, lx + 11, h - 4);
        lx += ctx.measureText(label).width + 24;
    }
}

function drawTop(ctx, w, h, segments) {
    const all = segments.flatMap((s) => s.centers.filter((p) => p));
    let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
    for (const [x, y] of all) {
        x0 = Math.min(x0, x); x1 = Math.max(x1, x);
        y0 = Math.min(y0, y); y1 = Math.max(y1, y);
    }
    const span = Math.max(x1 - x0, y1 - y0, 1e-6);
    const pad = 18, legend = 16;
    const scale = Math.min((w - 2 * pad) / span, (h - 2 * pad - legend) / span);
    const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
    // World x to the right, world y up on screen (a top-down view).
    const toScreen = ([x, y]) => [w / 2 + (x - cx) * scale, (h - legend) / 2 - (y - cy) * scale];
    const arrow = 0.12 * span;

    for (const seg of segments) {
        ctx.strokeStyle = seg.color;
        ctx.fillStyle = seg.color;
        ctx.lineWidth = 2;
        ctx.beginPath();
        let started = false;
        for (const p of seg.centers) {
            if (!p) { started = false; continue; }
            const [sx, sy] = toScreen(p);
            if (started) ctx.lineTo(sx, sy); else { ctx.moveTo(sx, sy); started = true; }
        }
        ctx.stroke();
        const every = Math.max(1, Math.ceil(seg.centers.length / MAX_ARROWS));
        ctx.lineWidth = 1;
        for (let i = 0; i < seg.centers.length; i += every) {
            const p = seg.centers[i], f = seg.forward[i];
            if (!p) continue;
            const [sx, sy] = toScreen(p);
            ctx.beginPath();
            ctx.arc(sx, sy, 2.5, 0, 2 * Math.PI);
            ctx.fill();
            if (!f) continue;
            const n = Math.hypot(f[0], f[1]);
            if (n < 1e-3) continue; // looking straight up or down: no direction in this view
            const len = arrow * Math.min(1, n * 2);
            const [ex, ey] = toScreen([p[0] + (f[0] / n) * len, p[1] + (f[1] / n) * len]);
            ctx.beginPath();
            ctx.moveTo(sx, sy);
            ctx.lineTo(ex, ey);
            ctx.stroke();
        }
    }
    return `top (x-y), ${span.toPrecision(3)} units`;
}

function draw3d(ctx, w, h, segments, view) {
    const legend = 16, pad = 10;
    const centers = segments.flatMap((s) => s.centers.filter((p) => p));
    let lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
    const grow = (p) => { for (let k = 0; k < 3; k++) { lo[k] = Math.min(lo[k], p[k]); hi[k] = Math.max(hi[k], p[k]); } };
    centers.forEach(grow);
    const span = Math.max(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]);
    const depth = span > 1e-6 ? 0.08 * span : 0.5; // a camera that stays put (pan, tilt) still shows its frustum

    const frusta = [];
    for (const seg of segments) {
        for (const i of sampleIndices(seg.centers.length, span > 1e-6 ? MAX_FRUSTA : 7)) {
            const c = seg.centers[i], f = seg.forward[i];
            if (!c || !f) continue;
            const fr = frustum(c, f, seg.down[i], seg.K[i], depth);
            if (!fr) continue;
            fr.color = seg.color;
            fr.first = i === 0;
            frusta.push(fr);
            fr.corners.forEach(grow);
            fr.up.forEach(grow);
        }
    }
    const mid = mul(add(lo, hi), 0.5);
    let R = 1e-6;
    for (const p of centers) R = Math.max(R, norm(sub(p, mid)));
    for (const fr of frusta) for (const p of [...fr.corners, fr.up[2]]) R = Math.max(R, norm(sub(p, mid)));
    if (R < 1e-3 * Math.max(1, norm(mid))) R = Math.max(R, 1e-3);

    // The viewer orbits the scene's bounding sphere (centre mid, radius R) at distance D.
    const D = 3 * R;
    const cp = Math.cos(view.pitch), sp = Math.sin(view.pitch);
    const eye = add(mid, mul([cp * Math.cos(view.yaw), cp * Math.sin(view.yaw), sp], D));
    const fwd = unit(sub(mid, eye));
    const right = unit(cross(fwd, [0, 0, 1]));
    const up = cross(right, fwd);
    const half = Math.max(10, 0.5 * Math.min(w, h - legend) - pad);
    const F = (1.1 * half * Math.sqrt(D * D - R * R)) / R; // the sphere's silhouette about fills the smaller side
    const ox = w / 2, oy = (h - legend) / 2;
    const project = (p) => {
        const v = sub(p, eye);
        const z = dot(v, fwd);
        if (z < 1e-3 * R) return null;
        return [ox + (F * dot(v, right)) / z, oy - (F * dot(v, up)) / z];
    };
    const line = (a, b) => {
        const pa = project(a), pb = project(b);
        if (!pa || !pb) return;
        ctx.moveTo(pa[0], pa[1]);
        ctx.lineTo(pb[0], pb[1]);
    };

    // Ground grid (world z = the lowest point) and the path's shadow on it, for depth.
    const ground = lo[2];
    const gs = niceStep(Math.max(hi[0] - lo[0], hi[1] - lo[1], R) / 4);
    const gx0 = Math.floor((lo[0] - 0.3 * R) / gs) * gs, gx1 = Math.ceil((hi[0] + 0.3 * R) / gs) * gs;
    const gy0 = Math.floor((lo[1] - 0.3 * R) / gs) * gs, gy1 = Math.ceil((hi[1] + 0.3 * R) / gs) * gs;
    ctx.strokeStyle = "#383b41";
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (let x = gx0; x <= gx1 + 1e-9; x += gs) line([x, gy0, ground], [x, gy1, ground]);
    for (let y = gy0; y <= gy1 + 1e-9; y += gs) line([gx0, y, ground], [gx1, y, ground]);
    ctx.stroke();
    ctx.globalAlpha = 0.3;
    for (const seg of segments) {
        ctx.strokeStyle = seg.color;
        ctx.beginPath();
        for (let i = 1; i < seg.centers.length; i++) {
            const a = seg.centers[i - 1], b = seg.centers[i];
            if (a && b) line([a[0], a[1], ground], [b[0], b[1], ground]);
        }
        ctx.stroke();
    }
    ctx.globalAlpha = 1;

    // The path, then the frusta from far to near.
    for (const seg of segments) {
        ctx.strokeStyle = seg.color;
        ctx.fillStyle = seg.color;
        ctx.lineWidth = 2;
        ctx.beginPath();
        for (let i = 1; i < seg.centers.length; i++) {
            const a = seg.centers[i - 1], b = seg.centers[i];
            if (a && b) line(a, b);
        }
        ctx.stroke();
        const start = seg.centers.find((p) => p);
        const s = start && project(start);
        if (s) { ctx.beginPath(); ctx.arc(s[0], s[1], 3.5, 0, 2 * Math.PI); ctx.fill(); }
    }
    frusta.sort((a, b) => dot(sub(b.apex, eye), fwd) - dot(sub(a.apex, eye), fwd));
    for (const fr of frusta) {
        const pc = fr.corners.map(project), pu = fr.up.map(project);
        ctx.strokeStyle = fr.color;
        ctx.fillStyle = fr.color;
        ctx.lineWidth = fr.first ? 1.8 : 1.1;
        if (pc.every((p) => p)) {
            ctx.globalAlpha = fr.first ? 0.3 : 0.1;
            ctx.beginPath();
            pc.forEach((p, k) => (k ? ctx.lineTo(p[0], p[1]) : ctx.moveTo(p[0], p[1])));
            ctx.closePath();
            ctx.fill();
            ctx.globalAlpha = 1;
        }
        ctx.beginPath();
        for (let k = 0; k < 4; k++) {
            line(fr.apex, fr.corners[k]);
            line(fr.corners[k], fr.corners[(k + 1) % 4]);
        }
        ctx.stroke();
        if (pu.every((p) => p)) {
            ctx.beginPath();
            pu.forEach((p, k) => (k ? ctx.lineTo(p[0], p[1]) : ctx.moveTo(p[0], p[1])));
            ctx.closePath();
            ctx.fill();
        }
    }

    // World axes (muted colours: x, y, z) in the bottom-right corner.
    const ax = [w - 26, h - legend - 24];
    const names = ["x", "y", "z"], colors = ["#b86a6a", "#6aa86a", "#6a86b0"];
    [[1, 0, 0], [0, 1, 0], [0, 0, 1]].forEach((e, k) => {
        const ex = ax[0] + 15 * dot(e, right), ey = ax[1] - 15 * dot(e, up);
        ctx.strokeStyle = colors[k];
        ctx.fillStyle = colors[k];
        ctx.lineWidth = 1.5;
        ctx.beginPath();
        ctx.moveTo(ax[0], ax[1]);
        ctx.lineTo(ex, ey);
        ctx.stroke();
        ctx.fillText(names[k], ex + 2, ey + 3);
    });
    return `3D, ${span > 1e-6 ? `${span.toPrecision(3)} units` : "fixed centre"} · drag to rotate`;
}

// Draw `payload` on `canvas` (its pixel size as it is; `pixelRatio` device pixels per CSS pixel).
export function drawCameraPath(canvas, payload, view = defaultView(), pixelRatio = 1) {
    const ctx = canvas.getContext("2d");
    const r = Number.isFinite(pixelRatio) && pixelRatio > 0 ? pixelRatio : 1;
    ctx.setTransform(r, 0, 0, r, 0, 0);
    const w = canvas.width / r, h = canvas.height / r;
    ctx.globalAlpha = 1;
    ctx.fillStyle = BACKGROUND;
    ctx.fillRect(0, 0, w, h);
    ctx.font = "11px sans-serif";
    const segments = cleanSegments(payload);
    if (!segments.some((s) => s.centers.some((p) => p))) {
        ctx.fillStyle = "#9aa0a6";
        ctx.fillText("camera path: run the node to draw it", 10, h / 2);
        return false;
    }
    const caption = view?.mode === "top" ? drawTop(ctx, w, h, segments) : draw3d(ctx, w, h, segments, view);
    drawLegend(ctx, w, h, segments);
    ctx.fillStyle = "#6b7075";
    ctx.fillText(caption, 8, 12);
    return true;
}

// --- widgets ---------------------------------------------------------------------------------------------
function addCameraPathWidget(node) {
    const container = document.createElement("div");
    container.className = "syn2seq-camera-path";
    container.style.cssText = "position:relative;width:100%;height:100%;";
    const canvas = document.createElement("canvas");
    canvas.width = 360;
    canvas.height = WIDGET_HEIGHT - 10;
    canvas.style.cssText = "display:block;width:100%;height:100%;touch-action:none;cursor:grab;";
    canvas.dataset.syn2seqCameraPath = "empty";
    const toggle = document.createElement("button");
    toggle.type = "button";
    toggle.className = "syn2seq-camera-path-view";
    toggle.style.cssText = "position:absolute;top:3px;right:4px;font:10px sans-serif;padding:1px 6px;"
        + "color:#d0d4d8;background:#2c2f34;border:1px solid #454950;border-radius:3px;cursor:pointer;";
    container.append(canvas, toggle);

    const view = defaultView();
    let payload = null, frame = 0;
    const draw = () => {
        frame = 0;
        const ratio = window.devicePixelRatio || 1;
        const cw = canvas.clientWidth, ch = canvas.clientHeight;
        if (cw > 0 && ch > 0 && (canvas.width !== Math.round(cw * ratio) || canvas.height !== Math.round(ch * ratio))) {
            canvas.width = Math.round(cw * ratio);
            canvas.height = Math.round(ch * ratio);
        }
        drawCameraPath(canvas, payload, view, cw > 0 ? canvas.width / cw : 1);
        toggle.textContent = view.mode === "top" ? "3D view" : "top view";
        canvas.dataset.syn2seqView = view.mode;
        canvas.dataset.syn2seqYaw = view.yaw.toFixed(3);
        canvas.dataset.syn2seqPitch = view.pitch.toFixed(3);
        canvas.style.cursor = view.mode === "3d" ? "grab" : "default";
    };
    const redraw = () => { if (!frame) frame = requestAnimationFrame(draw); };

    let drag = null;
    canvas.addEventListener("pointerdown", (e) => {
        if (view.mode !== "3d" || e.button !== 0) return;
        drag = { x: e.clientX, y: e.clientY, yaw: view.yaw, pitch: view.pitch };
        try { canvas.setPointerCapture(e.pointerId); } catch { /* a synthetic event's pointer: no capture */ }
        e.preventDefault();
        e.stopPropagation();
    });
    canvas.addEventListener("pointermove", (e) => {
        if (!drag) return;
        view.yaw = drag.yaw - (e.clientX - drag.x) * 0.01;
        view.pitch = Math.max(-PITCH_LIMIT, Math.min(PITCH_LIMIT, drag.pitch + (e.clientY - drag.y) * 0.01));
        e.preventDefault();
        e.stopPropagation();
        draw();
    });
    const endDrag = (e) => {
        if (!drag) return;
        drag = null;
        try { canvas.releasePointerCapture(e.pointerId); } catch { /* not captured */ }
        e.stopPropagation();
    };
    canvas.addEventListener("pointerup", endDrag);
    canvas.addEventListener("pointercancel", endDrag);
    const switchView = (e) => {
        view.mode = view.mode === "3d" ? "top" : "3d";
        e.stopPropagation();
        draw();
    };
    canvas.addEventListener("dblclick", switchView);
    toggle.addEventListener("pointerdown", (e) => e.stopPropagation());
    toggle.addEventListener("click", switchView);
    if (typeof ResizeObserver === "function") new ResizeObserver(redraw).observe(container);

    const widget = node.addDOMWidget("camera_path", "syn2seq_camera_path", container, {
        serialize: false,
        hideOnZoom: false,
        getMinHeight: () => WIDGET_HEIGHT,
        getValue: () => "",
        setValue: () => {},
    });
    draw();
    node.syn2seqCameraPath = (p) => {
        payload = p;
        draw();
        canvas.dataset.syn2seqCameraPath = "drawn";
    };
    return widget;
}

function addTextWidget(node) {
    const pre = document.createElement("pre");
    pre.className = "syn2seq-report";
    pre.style.cssText = "margin:0;padding:4px;font-size:11px;white-space:pre-wrap;overflow:auto;color:#d0d4d8;background:#202226;";
    pre.textContent = "run the node to see the metrics";
    node.addDOMWidget("report_text", "syn2seq_report", pre, {
        serialize: false,
        hideOnZoom: false,
        getMinHeight: () => 110,
        getValue: () => "",
        setValue: () => {},
    });
    node.syn2seqReport = (text) => { pre.textContent = String(text); };
}

app.registerExtension({
    name: "syn2seq.cameraPath",
    async beforeRegisterNodeDef(nodeType, nodeData) {
        const isPath = PATH_NODES.has(nodeData.name), isText = TEXT_NODES.has(nodeData.name);
        if (!isPath && !isText) return;
        const onNodeCreated = nodeType.prototype.onNodeCreated;
        nodeType.prototype.onNodeCreated = function () {
            const r = onNodeCreated?.apply(this, arguments);
            if (isPath) addCameraPathWidget(this);
            if (isText) addTextWidget(this);
            return r;
        };
        const onExecuted = nodeType.prototype.onExecuted;
        nodeType.prototype.onExecuted = function (message) {
            onExecuted?.apply(this, arguments);
            const payload = message?.[PATH_KEY]?.[0];
            if (payload && this.syn2seqCameraPath) this.syn2seqCameraPath(payload);
            const text = message?.text;
            if (Array.isArray(text) && this.syn2seqReport) this.syn2seqReport(text.join("\n"));
            this.setDirtyCanvas?.(true, true);
        };
    },
});
