// Syn2Seq frontend extension: a drawing of the camera path on the camera and sequence nodes (a perspective 3D
// view of the path and the camera frusta, rotated by dragging; double-click switches to a top-down x-y view),
// and the metrics report on the evaluate node.
//
// Data comes only from the node's UI payload (`ui` of io.NodeOutput on the Python side):
//   {"syn2seq_camera_path": [{"segments": [{"role": str, "count": int,
//                                          "centers": [[x, y, z], ...], "forward": [[x, y, z], ...],
//                                          "down": [[x, y, z], ...] (optional: image-down axis)}]}]}
//   {"text": [str]}                                   (Syn2SeqEvaluate)
// Everything is drawn on a <canvas> or set with textContent: no server data is ever parsed as HTML.

import { app } from "../../scripts/app.js";

const PATH_KEY = "syn2seq_camera_path";
const PATH_NODES = new Set(["Syn2SeqLoadTake", "Syn2SeqLoadCameras", "Syn2SeqTransitionPoses", "Syn2SeqBuildSequence",
                            "Syn2SeqCameraPath", "Syn2SeqWanCameraEmbedding"]);
const TEXT_NODES = new Set(["Syn2SeqEvaluate"]);
const WIDGET_HEIGHT = 190;
const MAX_ARROWS = 48; // view-direction ticks per segment
const COLORS = {
    exo: "#4f9cf7", source: "#4f9cf7", cameras: "#4f9cf7",
    transition: "#f5b642",
    ego: "#f2555a", target: "#f2555a",
};
const FALLBACK_COLORS = ["#7bd88f", "#c792ea", "#89ddff"];

function finitePairs(points) {
    const out = [];
    if (!Array.isArray(points)) return out;
    for (const p of points) {
        if (Array.isArray(p) && Number.isFinite(p[0]) && Number.isFinite(p[1])) out.push([p[0], p[1]]);
        else out.push(null);
    }
    return out;
}

function finiteTriples(points) {
    const out = [];
    if (!Array.isArray(points)) return out;
    for (const p of points) {
        if (Array.isArray(p) && Number.isFinite(p[0]) && Number.isFinite(p[1]) && Number.isFinite(p[2] ?? 0)) {
            out.push([p[0], p[1], p[2] ?? 0]);
        } else out.push(null);
    }
    return out;
}

function cleanSegments(payload) {
    const segments = Array.isArray(payload?.segments) ? payload.segments : [];
    return segments.slice(0, 8).map((s, i) => ({
        role: String(s?.role ?? "").slice(0, 24),
        count: Number.isFinite(s?.count) ? s.count : 0,
        centers: finitePairs(s?.centers),
        forward: finitePairs(s?.forward),
        centers3: finiteTriples(s?.centers),
        forward3: finiteTriples(s?.forward),
        down3: finiteTriples(s?.down),
        color: COLORS[String(s?.role)] ?? FALLBACK_COLORS[i % FALLBACK_COLORS.length],
    }));
}

const sub = (a, b) => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
const add = (a, b, k = 1) => [a[0] + k * b[0], a[1] + k * b[1], a[2] + k * b[2]];
const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
const unit = (a) => { const n = Math.hypot(a[0], a[1], a[2]); return n > 1e-9 ? [a[0] / n, a[1] / n, a[2] / n] : null; };

// A perspective view of the path from an orbiting eye: yaw around world z (up), pitch above the horizon.
export function drawCameraPath3D(canvas, payload, view = { yaw: -0.6, pitch: 0.45 }) {
    const ctx = canvas.getContext("2d");
    const w = canvas.width, h = canvas.height;
    ctx.fillStyle = "#202226";
    ctx.fillRect(0, 0, w, h);
    ctx.font = "11px sans-serif";
    const segments = cleanSegments(payload);
    const all = segments.flatMap((s) => s.centers3.filter((p) => p));
    if (!all.length) {
        ctx.fillStyle = "#9aa0a6";
        ctx.fillText("camera path: run the node to draw it", 10, h / 2);
        return;
    }
    const lo = [0, 1, 2].map((k) => Math.min(...all.map((p) => p[k])));
    const hi = [0, 1, 2].map((k) => Math.max(...all.map((p) => p[k])));
    const centre = [0, 1, 2].map((k) => (lo[k] + hi[k]) / 2);
    const span = Math.max(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2], 1e-6);
    const dist = 2.2 * span;
    const eye = add(centre, [Math.cos(view.pitch) * Math.cos(view.yaw), Math.cos(view.pitch) * Math.sin(view.yaw),
                             Math.sin(view.pitch)], dist);
    const fwd = unit(sub(centre, eye));
    const right = unit(cross(fwd, [0, 0, 1])) ?? [1, 0, 0];
    const up = cross(right, fwd);
    const legend = 16, focal = 0.9 * Math.min(w, h - legend);
    const project = (p) => {
        const d = sub(p, eye);
        const z = d[0] * fwd[0] + d[1] * fwd[1] + d[2] * fwd[2];
        if (z < 1e-3 * span) return null;
        return [w / 2 + focal * (d[0] * right[0] + d[1] * right[1] + d[2] * right[2]) / z,
                (h - legend) / 2 - focal * (d[0] * up[0] + d[1] * up[1] + d[2] * up[2]) / z];
    };
    const line = (a, b) => {
        const pa = project(a), pb = project(b);
        if (!pa || !pb) return;
        ctx.beginPath(); ctx.moveTo(pa[0], pa[1]); ctx.lineTo(pb[0], pb[1]); ctx.stroke();
    };
    // The ground grid (z = the lowest camera), for a sense of up.
    ctx.strokeStyle = "#34373c";
    ctx.lineWidth = 1;
    for (let i = -2; i <= 2; i++) {
        const t = (i / 2) * span * 0.75;
        line([centre[0] + t, centre[1] - 0.75 * span, lo[2]], [centre[0] + t, centre[1] + 0.75 * span, lo[2]]);
        line([centre[0] - 0.75 * span, centre[1] + t, lo[2]], [centre[0] + 0.75 * span, centre[1] + t, lo[2]]);
    }
    const size = 0.08 * span;
    for (const seg of segments) {
        ctx.strokeStyle = seg.color;
        ctx.lineWidth = 2;
        for (let i = 1; i < seg.centers3.length; i++) {
            if (seg.centers3[i - 1] && seg.centers3[i]) line(seg.centers3[i - 1], seg.centers3[i]);
        }
        ctx.lineWidth = 1;
        const every = Math.max(1, Math.ceil(seg.centers3.length / 16));
        for (let i = 0; i < seg.centers3.length; i += every) {
            const c = seg.centers3[i], f = seg.forward3[i] && unit(seg.forward3[i]);
            if (!c || !f) continue;
            let down = seg.down3[i] && unit(seg.down3[i]);
            const r = down ? unit(cross(down, f)) : unit(cross(f, [0, 0, 1]));
            if (!r) continue;
            down = down ?? cross(f, r);
            const corners = [[-1, -1], [1, -1], [1, 1], [-1, 1]].map(([a, b]) =>
                add(add(add(c, f, 1.6 * size), r, a * size), down, b * 0.75 * size));
            for (const k of corners) line(c, k);
            for (let j = 0; j < 4; j++) line(corners[j], corners[(j + 1) % 4]);
            line(add(add(c, f, 1.6 * size), down, -0.75 * size), add(add(c, f, 1.6 * size), down, -1.2 * size));
        }
    }
    let lx = 8;
    for (const seg of segments) {
        const label = `${seg.role} (${seg.count})`;
        ctx.fillStyle = seg.color;
        ctx.fillRect(lx, h - 12, 8, 8);
        ctx.fillStyle = "#d0d4d8";
        ctx.fillText(label, lx + 11, h - 4);
        lx += ctx.measureText(label).width + 24;
    }
    ctx.fillStyle = "#6b7075";
    const hint = `3D, ${span.toPrecision(3)} units; drag to rotate, double-click: top view`;
    ctx.fillText(hint, w - ctx.measureText(hint).width - 6, 12);
}

export function drawCameraPath(canvas, payload) {
    const ctx = canvas.getContext("2d");
    const w = canvas.width, h = canvas.height;
    ctx.fillStyle = "#202226";
    ctx.fillRect(0, 0, w, h);
    ctx.font = "11px sans-serif";
    const segments = cleanSegments(payload);
    const all = segments.flatMap((s) => s.centers.filter((p) => p));
    if (!all.length) {
        ctx.fillStyle = "#9aa0a6";
        ctx.fillText("camera path: run the node to draw it", 10, h / 2);
        return;
    }
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
            const [ex, ey] = toScreen([p[0] + (f[0] / n) * arrow * Math.min(1, n * 2), p[1] + (f[1] / n) * arrow * Math.min(1, n * 2)]);
            ctx.beginPath();
            ctx.moveTo(sx, sy);
            ctx.lineTo(ex, ey);
            ctx.stroke();
        }
    }
    let lx = 8;
    for (const seg of segments) {
        const label = `${seg.role} (${seg.count})`;
        ctx.fillStyle = seg.color;
        ctx.fillRect(lx, h - 12, 8, 8);
        ctx.fillStyle = "#d0d4d8";
        ctx.fillText(label, lx + 11, h - 4);
        lx += ctx.measureText(label).width + 24;
    }
    ctx.fillStyle = "#6b7075";
    const scaleText = `x-y, ${span.toPrecision(3)} units`;
    ctx.fillText(scaleText, w - ctx.measureText(scaleText).width - 6, 12);
}

function addCameraPathWidget(node) {
    const container = document.createElement("div");
    container.className = "syn2seq-camera-path";
    container.style.width = "100%";
    container.style.height = "100%";
    const canvas = document.createElement("canvas");
    canvas.width = 360;
    canvas.height = WIDGET_HEIGHT - 10;
    canvas.style.width = "100%";
    canvas.style.height = "100%";
    canvas.dataset.syn2seqCameraPath = "empty";
    container.appendChild(canvas);
    const widget = node.addDOMWidget("camera_path", "syn2seq_camera_path", container, {
        serialize: false,
        hideOnZoom: false,
        getMinHeight: () => WIDGET_HEIGHT,
        getValue: () => "",
        setValue: () => {},
    });
    const state = { payload: null, mode: "3d", view: { yaw: -0.6, pitch: 0.45 }, drag: null };
    const redraw = () => {
        if (state.mode === "3d") drawCameraPath3D(canvas, state.payload, state.view);
        else drawCameraPath(canvas, state.payload);
        canvas.dataset.syn2seqView = state.mode;
    };
    canvas.addEventListener("pointerdown", (e) => {
        state.drag = [e.clientX, e.clientY];
        canvas.setPointerCapture?.(e.pointerId);
        e.stopPropagation();
    });
    canvas.addEventListener("pointermove", (e) => {
        if (!state.drag || state.mode !== "3d") return;
        state.view.yaw -= 0.01 * (e.clientX - state.drag[0]);
        state.view.pitch = Math.max(-1.45, Math.min(1.45, state.view.pitch + 0.01 * (e.clientY - state.drag[1])));
        state.drag = [e.clientX, e.clientY];
        redraw();
        e.stopPropagation();
    });
    canvas.addEventListener("pointerup", () => { state.drag = null; });
    canvas.addEventListener("dblclick", (e) => {
        state.mode = state.mode === "3d" ? "top" : "3d";
        redraw();
        e.stopPropagation();
    });
    redraw();
    node.syn2seqCameraPath = (payload) => {
        state.payload = payload;
        redraw();
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
