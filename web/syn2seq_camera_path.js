// Syn2Seq frontend extension: a top-down (x-y) drawing of the camera path on the camera and sequence nodes,
// and the metrics report on the evaluate node.
//
// Data comes only from the node's UI payload (`ui` of io.NodeOutput on the Python side):
//   {"syn2seq_camera_path": [{"segments": [{"role": str, "count": int,
//                                          "centers": [[x, y, z], ...], "forward": [[x, y, z], ...]}]}]}
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

function cleanSegments(payload) {
    const segments = Array.isArray(payload?.segments) ? payload.segments : [];
    return segments.slice(0, 8).map((s, i) => ({
        role: String(s?.role ?? "").slice(0, 24),
        count: Number.isFinite(s?.count) ? s.count : 0,
        centers: finitePairs(s?.centers),
        forward: finitePairs(s?.forward),
        color: COLORS[String(s?.role)] ?? FALLBACK_COLORS[i % FALLBACK_COLORS.length],
    }));
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
    drawCameraPath(canvas, null);
    node.syn2seqCameraPath = (payload) => {
        drawCameraPath(canvas, payload);
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
