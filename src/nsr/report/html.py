"""One self-contained HTML page per run: config, training curves, metric tables, renders vs ground truth and
an interactive 3D view of the mesh. Everything is inline (images as base64 PNG, curves as SVG, the mesh as
base64 typed arrays for a small WebGL2 viewer written here): the page opens offline, no CDN."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh
import yaml

CURVES = (
    "train/loss",
    "train/psnr",
    "train/rgb",
    "train/eikonal",
    "train/mask",
    "train/pocket",
    "train/pocket_points",
    "train/hit_ratio",
    "train/lr",
)
"""TensorBoard scalars drawn, when present."""


@dataclass
class ReportInputs:
    """What a report shows; every part is optional."""

    title: str
    summary: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    """(run name, {label: text}) per run: the page's first table, one column per run."""
    config_text: str = ""
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    """tag -> (steps, values)."""
    tables: list[tuple[str, dict]] = field(default_factory=list)
    """(caption, flat dict of metrics)."""
    view_rows: list[tuple[str, list[dict]]] = field(default_factory=list)
    """(caption, per-view CSV rows)."""
    images: list[tuple[str, bytes]] = field(default_factory=list)
    """(caption, PNG bytes)."""
    comparison: list[tuple[str, bytes]] = field(default_factory=list)
    """(caption, PNG bytes): held-out views of two runs side by side with the ground truth."""
    comparison_note: str = ""
    mesh: trimesh.Trimesh | None = None
    mesh_note: str = ""


def read_scalars(tensorboard_dir: Path, tags=CURVES) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Scalar curves from TensorBoard event files (empty when there are none)."""
    if not tensorboard_dir.is_dir():
        return {}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tensorboard_dir), size_guidance={"scalars": 0})
    acc.Reload()
    available = set(acc.Tags().get("scalars", []))
    curves = {}
    for tag in tags:
        if tag in available:
            events = acc.Scalars(tag)
            curves[tag] = (
                np.array([e.step for e in events]),
                np.array([e.value for e in events], dtype=float),
            )
    return curves


def decimate(mesh: trimesh.Trimesh, max_faces: int) -> trimesh.Trimesh:
    """Vertex-clustering decimation to at most ~`max_faces` faces (grid cells merge their vertices)."""
    if len(mesh.faces) <= max_faces:
        return mesh
    extent = float(np.max(mesh.extents))
    cell = extent / 512
    while True:
        keys = np.floor((mesh.vertices - mesh.bounds[0]) / cell).astype(np.int64)
        _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        faces = inverse[mesh.faces]
        ok = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
        faces = np.unique(np.sort(faces[ok], axis=1), axis=0, return_index=True)[1]
        if len(faces) <= max_faces:
            break
        cell *= 1.3
    # sums of positions per cluster -> centroids; keep the original face orientation
    counts = np.bincount(inverse)
    centroids = (
        np.stack([np.bincount(inverse, weights=mesh.vertices[:, i]) for i in range(3)], 1) / counts[:, None]
    )
    new_faces = inverse[mesh.faces][ok]
    _, unique = np.unique(np.sort(new_faces, axis=1), axis=0, return_index=True)
    del first
    return trimesh.Trimesh(centroids, new_faces[np.sort(unique)], process=True)


def _svg_curve(tag: str, steps: np.ndarray, values: np.ndarray, width=360, height=200) -> str:
    pad_l, pad_r, pad_t, pad_b = 52, 10, 22, 26
    finite = np.isfinite(values)
    steps, values = steps[finite], values[finite]
    if len(values) == 0:
        return ""
    log = tag.endswith(("loss", "rgb", "eikonal", "mask", "lr")) and np.all(values > 0)
    ys = np.log10(values) if log else values
    lo, hi = float(ys.min()), float(ys.max())
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    x0, x1 = float(steps.min()), float(max(steps.max(), steps.min() + 1))
    px = pad_l + (steps - x0) / (x1 - x0) * (width - pad_l - pad_r)
    py = pad_t + (1 - (ys - lo) / (hi - lo)) * (height - pad_t - pad_b)
    points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py))

    def label(v: float) -> str:
        return f"{10**v:.3g}" if log else f"{v:.4g}"

    return (
        f'<svg width="{width}" height="{height}" class="curve">'
        f'<text x="{pad_l}" y="14" class="t">{html.escape(tag)}{" (log)" if log else ""}</text>'
        f'<line x1="{pad_l}" y1="{height - pad_b}" x2="{width - pad_r}" y2="{height - pad_b}" class="ax"/>'
        f'<line x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{height - pad_b}" class="ax"/>'
        f'<text x="{pad_l - 4}" y="{pad_t + 8}" class="l" text-anchor="end">{label(hi)}</text>'
        f'<text x="{pad_l - 4}" y="{height - pad_b}" class="l" text-anchor="end">{label(lo)}</text>'
        f'<text x="{pad_l}" y="{height - 8}" class="l">{int(x0)}</text>'
        f'<text x="{width - pad_r}" y="{height - 8}" class="l" text-anchor="end">step {int(x1)}</text>'
        f'<polyline points="{points}" class="line"/></svg>'
    )


def format_number(value: float | int) -> str:
    """A number as a table shows it: whole numbers as integers, else 4 significant digits (1 decimal from
    100 on; 18.00, 0.5264, 1.200e-05); no 6-digit walls."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "n/a" if math.isnan(value) else str(value)
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:#.4g}"


def _format(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int | float):
        return format_number(value)
    if isinstance(value, list) and all(isinstance(v, int | float) for v in value) and len(value) <= 8:
        return ", ".join(format_number(v) for v in value)
    if isinstance(value, list | dict):
        return html.escape(json.dumps(value)[:200])
    return html.escape(str(value))


def _table(caption: str, data: dict) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{_format(v)}</td></tr>"
        for k, v in data.items()
        if k != "conventions"
    )
    return f"<table><caption>{html.escape(caption)}</caption>{rows}</table>"


def _summary_table(columns: list[tuple[str, dict[str, str]]]) -> str:
    """One row per label, one column per run."""
    labels: list[str] = []
    for _, values in columns:
        labels += [k for k in values if k not in labels]
    head = "<tr><th></th>" + "".join(f"<th>{html.escape(name)}</th>" for name, _ in columns) + "</tr>"
    body = "".join(
        f"<tr><th>{html.escape(label)}</th>"
        + "".join(f"<td>{html.escape(values.get(label, '-'))}</td>" for _, values in columns)
        + "</tr>"
        for label in labels
    )
    return f"<table class='summary'>{head}{body}</table>"


def _view_table(caption: str, rows: list[dict]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
    body = ""
    for r in rows:
        cells = []
        for v in r.values():
            try:
                cells.append(format_number(float(v)) if v not in ("", None) else "")
            except ValueError:
                cells.append(html.escape(str(v)))
        body += "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
    return f"<table class='views'><caption>{html.escape(caption)}</caption><tr>{head}</tr>{body}</table>"


def _mesh_payload(mesh: trimesh.Trimesh) -> dict:
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    centre = 0.5 * (vertices.min(0) + vertices.max(0))
    scale = float(np.max(vertices.max(0) - vertices.min(0))) or 1.0
    positions = ((vertices - centre) / scale).astype(np.float32)
    normals = np.asarray(mesh.vertex_normals, dtype=np.float32)
    faces = np.asarray(mesh.faces, dtype=np.uint32)

    def b64(a: np.ndarray) -> str:
        return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()

    return {
        "positions": b64(positions),
        "normals": b64(normals),
        "indices": b64(faces),
        "count": int(faces.size),
    }


VIEWER_JS = r"""
(function(){
const data = JSON.parse(document.getElementById('mesh-data').textContent);
const canvas = document.getElementById('mesh-view');
const gl = canvas.getContext('webgl2', {antialias: true, preserveDrawingBuffer: true});
if (!gl) { document.getElementById('mesh-msg').textContent = 'WebGL2 is not available in this browser.'; return; }
function decode(b64, Type) { const s = atob(b64); const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i); return new Type(b.buffer); }
const pos = decode(data.positions, Float32Array), nrm = decode(data.normals, Float32Array);
const idx = decode(data.indices, Uint32Array);
function shader(type, src) { const s = gl.createShader(type); gl.shaderSource(s, src); gl.compileShader(s);
  if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw gl.getShaderInfoLog(s); return s; }
const prog = gl.createProgram();
gl.attachShader(prog, shader(gl.VERTEX_SHADER, `#version 300 es
in vec3 p; in vec3 n; uniform mat4 mvp; uniform mat3 rot; out vec3 vn;
void main(){ vn = rot * n; gl_Position = mvp * vec4(p, 1.0); }`));
gl.attachShader(prog, shader(gl.FRAGMENT_SHADER, `#version 300 es
precision highp float; in vec3 vn; out vec4 c;
void main(){ vec3 n = normalize(vn); if (!gl_FrontFacing) n = -n;
  float d = max(dot(n, normalize(vec3(0.3, 0.4, 1.0))), 0.0);
  vec3 base = vec3(0.72, 0.76, 0.84); c = vec4(base * (0.25 + 0.75 * d) + 0.15 * pow(d, 24.0), 1.0); }`));
gl.linkProgram(prog); gl.useProgram(prog);
function buffer(arr, loc, size) { const b = gl.createBuffer(); gl.bindBuffer(gl.ARRAY_BUFFER, b);
  gl.bufferData(gl.ARRAY_BUFFER, arr, gl.STATIC_DRAW); const l = gl.getAttribLocation(prog, loc);
  gl.enableVertexAttribArray(l); gl.vertexAttribPointer(l, size, gl.FLOAT, false, 0, 0); }
const vao = gl.createVertexArray(); gl.bindVertexArray(vao);
buffer(pos, 'p', 3); buffer(nrm, 'n', 3);
const ib = gl.createBuffer(); gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, ib); gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, idx, gl.STATIC_DRAW);
let yaw = 0.6, pitch = 0.35, dist = 1.9, drag = null;
function mul(a, b) { const r = new Float32Array(16); for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) {
  let s = 0; for (let k = 0; k < 4; k++) s += a[k * 4 + j] * b[i * 4 + k]; r[i * 4 + j] = s; } return r; }
function draw() {
  const w = canvas.clientWidth, h = canvas.clientHeight; canvas.width = w; canvas.height = h;
  gl.viewport(0, 0, w, h); gl.clearColor(0.97, 0.97, 0.98, 1); gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
  gl.enable(gl.DEPTH_TEST);
  const cy = Math.cos(yaw), sy = Math.sin(yaw), cp = Math.cos(pitch), sp = Math.sin(pitch);
  // rotation: yaw about y, then pitch about x (column-major)
  const R = [cy, sy * sp, -sy * cp, 0,  0, cp, sp, 0,  sy, -cy * sp, cy * cp, 0,  0, 0, -dist, 1];
  const f = 1 / Math.tan(0.5 * 0.8), a = w / h, nr = 0.05, fr = 20;
  const P = [f / a, 0, 0, 0, 0, f, 0, 0, 0, 0, (fr + nr) / (nr - fr), -1, 0, 0, 2 * fr * nr / (nr - fr), 0];
  gl.uniformMatrix4fv(gl.getUniformLocation(prog, 'mvp'), false, mul(P, R));
  gl.uniformMatrix3fv(gl.getUniformLocation(prog, 'rot'), false, [R[0], R[1], R[2], R[4], R[5], R[6], R[8], R[9], R[10]]);
  gl.drawElements(gl.TRIANGLES, data.count, gl.UNSIGNED_INT, 0);
}
canvas.addEventListener('mousedown', e => { drag = [e.clientX, e.clientY]; });
window.addEventListener('mouseup', () => { drag = null; });
window.addEventListener('mousemove', e => { if (!drag) return; yaw += (e.clientX - drag[0]) * 0.01;
  pitch = Math.max(-1.5, Math.min(1.5, pitch + (e.clientY - drag[1]) * 0.01)); drag = [e.clientX, e.clientY]; draw(); });
canvas.addEventListener('wheel', e => { e.preventDefault(); dist = Math.max(0.3, Math.min(10, dist * Math.exp(e.deltaY * 0.001))); draw(); }, {passive: false});
window.addEventListener('resize', draw);
draw();
})();
"""

CSS = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1280px; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 8px 16px 12px 0; display: inline-table; vertical-align: top; font-size: 13px; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border: 1px solid #ddd; padding: 2px 8px; text-align: left; } th { background: #f4f5f7; font-weight: 500; }
pre { background: #f6f8fa; padding: 10px; font-size: 12px; max-height: 320px; overflow: auto; }
.curve { margin: 4px; border: 1px solid #eee; } .curve .ax { stroke: #888; } .curve .line { fill: none; stroke: #2d64c8; stroke-width: 1.5; }
.curve .t { font-size: 12px; font-weight: 600; } .curve .l { font-size: 10px; fill: #666; }
figure { display: inline-block; margin: 6px; } figure img { image-rendering: pixelated; border: 1px solid #ddd; height: 200px; width: auto; }
figcaption { font-size: 12px; color: #555; }
figure.wide { display: block; } figure.wide img { height: 220px; }
table.summary td, table.summary th { padding: 3px 10px; font-size: 14px; }
#mesh-view { width: 640px; height: 480px; border: 1px solid #ccc; cursor: grab; }
.note { color: #666; font-size: 13px; }
"""


def render_html(inputs: ReportInputs) -> str:
    """The page as one string."""
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(inputs.title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(inputs.title)}</h1>",
    ]
    if inputs.summary:
        parts.append("<h2>Summary</h2>" + _summary_table(inputs.summary))
    if inputs.comparison or inputs.comparison_note:
        parts.append("<h2>Held-out views side by side</h2>")
        if inputs.comparison_note:
            parts.append(f"<p class='note'>{html.escape(inputs.comparison_note)}</p>")
        for caption, png in inputs.comparison:
            src = "data:image/png;base64," + base64.b64encode(png).decode()
            parts.append(
                f"<figure class='wide'><img src='{src}'><figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    parts.append("<h2>Metrics</h2>")
    if inputs.tables:
        parts += [_table(caption, data) for caption, data in inputs.tables]
    else:
        parts.append("<p class='note'>No evaluation yet: run <code>nsr eval RUN</code> first.</p>")
    parts += [_view_table(caption, rows) for caption, rows in inputs.view_rows]
    parts.append("<h2>Training curves</h2>")
    if inputs.curves:
        parts += [_svg_curve(tag, *curve) for tag, curve in inputs.curves.items()]
    else:
        parts.append("<p class='note'>No TensorBoard scalars in this run folder.</p>")
    parts.append("<h2>Renders</h2>")
    if inputs.images:
        for caption, png in inputs.images:
            src = "data:image/png;base64," + base64.b64encode(png).decode()
            parts.append(f"<figure><img src='{src}'><figcaption>{html.escape(caption)}</figcaption></figure>")
    else:
        parts.append("<p class='note'>No renders yet.</p>")
    parts.append("<h2>Mesh</h2>")
    if inputs.mesh is not None:
        payload = json.dumps(_mesh_payload(inputs.mesh))
        parts.append(
            f"<p class='note'>{html.escape(inputs.mesh_note)} Drag to rotate, scroll to zoom.</p>"
            f"<canvas id='mesh-view'></canvas><p id='mesh-msg' class='note'></p>"
            f"<script type='application/json' id='mesh-data'>{payload}</script><script>{VIEWER_JS}</script>"
        )
    else:
        parts.append(f"<p class='note'>{html.escape(inputs.mesh_note or 'No mesh.')}</p>")
    parts.append(f"<h2>Configuration</h2><pre>{html.escape(inputs.config_text)}</pre>")
    parts.append("</body></html>")
    return "".join(parts)


def eval_folders(run_dir: Path) -> list[Path]:
    """The evaluation folders of the newest evaluated step (RUN/eval/step_XXXXXXX[_<split>][_<W>x<H>]),
    the default one (held-out views at the training resolution) first."""
    root = run_dir / "eval"
    folders = [p for p in root.glob("step_*") if p.is_dir()] if root.is_dir() else []
    if not folders:
        return []

    def step(p: Path) -> int:
        digits = p.name.split("_")[1]
        return int(digits) if digits.isdigit() else -1

    newest = max(step(p) for p in folders)
    return sorted((p for p in folders if step(p) == newest), key=lambda p: (len(p.name), p.name))


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _pct(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}g}%"


def _db(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.2f} dB"


def run_summary(run_dir: Path) -> dict[str, str]:
    """The few numbers a reader wants first, as text by label: training length, time, it/s, device, model;
    Chamfer and F-score in % of the GT diagonal; DTU; held-out PSNR (full, in the mask, anti-aliased,
    interior), SSIM, LPIPS; trained-camera errors. Labels without a measurement are left out."""
    from nsr.engine.machine import read_machines

    out: dict[str, str] = {}
    config = {}
    if (run_dir / "config.yaml").is_file():
        loaded = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
        config = loaded.get("config", loaded) if isinstance(loaded, dict) else {}
    model = config.get("model", {}) if isinstance(config, dict) else {}
    if isinstance(model, dict) and model:
        encoding = (model.get("sdf") or {}).get("encoding") or {}
        out["model"] = f"{model.get('kind', 'idr')}, SDF encoding {encoding.get('kind', '?')}"
    last = _read_json(run_dir / "schedule.json").get("last")
    if last and last[1] > 0:
        steps, seconds = int(last[0]) + 1, float(last[1])
        out["training"] = f"{steps} steps in {seconds:.0f} s ({last[0] / seconds:.3g} it/s)"
    sessions = read_machines(run_dir)
    if sessions:
        names = []
        for s in sessions:
            text = f"{s.get('name', '?')} ({s.get('device', '?')}"
            text += (
                f", {s['threads']} CPU thread{'s' if s['threads'] != 1 else ''})"
                if "cpu" in str(s.get("device")) and "threads" in s
                else ")"
            )
            if text not in names:
                names.append(text)
        out["device"] = "; ".join(names)
    results: dict = {}
    for folder in reversed(eval_folders(run_dir)):  # the default folder's numbers win
        for name in ("summary.json", "geometry.json", "dtu.json"):
            results.update(_read_json(folder / name))
    if results.get("chamfer_rel") is not None:
        out["Chamfer"] = (
            f"{_pct(results['chamfer_rel'])} of the GT diagonal ({format_number(results['chamfer'])} world units)"
        )
        if results.get("fscore") is not None:
            out["F-score"] = (
                f"{100 * results['fscore']:.1f}% at {_pct(results.get('threshold_rel'), 2)} of the diagonal"
            )
    if results.get("dtu_overall") is not None:
        out["DTU"] = (
            f"overall {results['dtu_overall']:.3f} mm (accuracy {results['dtu_accuracy']:.3f}, "
            f"completeness {results['dtu_completeness']:.3f})"
        )
    if results.get("psnr") is not None:
        where = f"{results.get('num_views', '?')} {results.get('split', '')} views"
        if results.get("resolution"):
            where += " at {}x{}".format(*results["resolution"])
        parts = [f"in mask {_db(results.get('psnr_mask'))}"]
        if results.get("psnr_mask_aa") is not None:
            parts.append(f"anti-aliased {_db(results['psnr_mask_aa'])}")
        if results.get("psnr_interior") is not None:
            parts.append(f"interior {_db(results['psnr_interior'])}")
        out["PSNR"] = f"{_db(results['psnr'])}; {', '.join(parts)} ({where})"
        if results.get("ssim") is not None:
            out["SSIM"] = (
                f"{results['ssim']:.4f} (in mask {format_number(results.get('ssim_mask') or math.nan)})"
            )
        out["LPIPS"] = (
            "n/a (no AlexNet weights)" if results.get("lpips") is None else f"{results['lpips']:.4f}"
        )
    cameras = _read_json(run_dir / "eval_cameras.json")
    if cameras.get("after"):
        out["cameras"] = camera_line(cameras)
    return out


def camera_line(summary: dict) -> str:
    """Trained-camera errors (a `CameraEvaluation.summary()`, as in RUN/eval_cameras.json) in one line: the
    mean and the worst camera, after training and (in brackets) before."""
    b, a = summary["before"], summary["after"]

    def rotation(part: dict) -> str:
        worst = f", max {part['rotation_deg_max']:.3g}°" if "rotation_deg_max" in part else ""
        return f"{part['rotation_deg_mean']:.3g}°{worst}"

    def centre(part: dict) -> str:
        worst = f", max {_pct(part['centre_rel_max'])}" if "centre_rel_max" in part else ""
        return f"{_pct(part['centre_rel_mean'])}{worst}"

    return (
        f"rotation {rotation(a)} (from {rotation(b)}), centre {centre(a)} of the distance (from {centre(b)}), "
        f"{a['num_cameras']} cameras"
    )


def camera_table(summary: dict) -> dict:
    """Trained-camera errors (RUN/eval_cameras.json) as a flat table: mean / median / max before and after."""
    table: dict = {}
    for label, key, factor in (
        ("rotation (deg)", "rotation_deg", 1.0),
        ("centre (% of distance)", "centre_rel", 100.0),
        ("centre (world units)", "centre_world", 1.0),
    ):
        for when in ("before", "after"):
            part = summary.get(when, {})
            for stat in ("mean", "median", "max"):
                if f"{key}_{stat}" in part:
                    table[f"{label} {when}: {stat}"] = factor * part[f"{key}_{stat}"]
    if "after" in summary:
        table["cameras"] = summary["after"].get("num_cameras")
        table["alignment inliers"] = summary["after"].get("num_inliers")
    return table


def guard_table(health: dict) -> dict:
    """The camera guard's record (RUN/cameras_health.json) as a flat table: its last check, and every
    re-localisation it tried."""
    table: dict = {
        "checks": health.get("checks"),
        "median error of the views": health.get("median"),
        "flagged at the last check": ", ".join(str(c["view"]) for c in health["cameras"] if c["flagged"])
        or "none",
    }
    for camera in health["cameras"]:
        for r in camera["recoveries"]:
            outcome = (
                f"moved {r['rotation_deg']:.2f}° and {_pct(r['centre_moved'])} of its distance"
                if r["accepted"]
                else "kept (no better pose)"
            )
            table[f"view {camera['view']} at step {r['step']}"] = (
                f"score {r['score_before']:.4g} -> {r['score_after']:.4g}: {outcome}"
            )
    return table


def collect_run(run_dir: Path, max_images: int = 8) -> ReportInputs:
    """Everything a run folder already holds: config, curves, the newest evaluation (summary.json,
    geometry.json, dtu.json, views.csv, renders/ of each folder of the newest evaluated step), trained-camera
    errors (eval_cameras.json), validation images, and the summary of them all."""
    inputs = ReportInputs(title=f"NSR run {run_dir.resolve().name}")
    config = run_dir / "config.yaml"
    inputs.config_text = config.read_text() if config.is_file() else "(no config.yaml)"
    inputs.curves = read_scalars(run_dir / "tensorboard")
    inputs.summary = [(run_dir.resolve().name, run_summary(run_dir))]
    shown: set[str] = set()
    for folder in eval_folders(run_dir):
        for name, caption in (("geometry.json", "geometry"), ("dtu.json", "DTU"), ("summary.json", "images")):
            path = folder / name
            if path.is_file():
                data = _read_json(path)
                if name == "summary.json":  # what the other tables do not already show
                    data = {
                        k: v
                        for k, v in data.items()
                        if k not in shown and not k.endswith(("_min", "_max")) and k != "views"
                    }
                shown.update(data)
                inputs.tables.append((f"{caption} ({folder.name})", data))
        views = folder / "views.csv"
        if views.is_file():
            with views.open() as f:
                inputs.view_rows.append((f"per view ({folder.name})", list(csv.DictReader(f))))
        for png in sorted((folder / "renders").glob("view_*.png"))[:max_images]:
            inputs.images.append(
                (f"{folder.name} {png.stem}: render | ground truth | error", png.read_bytes())
            )
    cameras = _read_json(run_dir / "eval_cameras.json")
    if cameras.get("after"):
        inputs.tables.append(("trained cameras (eval_cameras.json)", camera_table(cameras)))
    health = _read_json(run_dir / "cameras_health.json")
    if health.get("cameras"):
        inputs.tables.append(("camera guard (cameras_health.json)", guard_table(health)))
    validation = (
        sorted((run_dir / "validation").glob("step_*.png")) if (run_dir / "validation").is_dir() else []
    )
    if validation:
        inputs.images.append(
            (
                f"validation {validation[-1].stem}: colour | normals | ground truth",
                validation[-1].read_bytes(),
            )
        )
    return inputs


def _thirds(png: Path) -> list[np.ndarray]:
    """An evaluation row (render | ground truth | error map) split into its three images."""
    from PIL import Image

    row = np.asarray(Image.open(png).convert("RGB"))
    width = row.shape[1] // 3
    return [row[:, i * width : (i + 1) * width] for i in range(3)]


def compare_views(run_a: Path, run_b: Path, max_images: int = 8) -> tuple[list[tuple[str, bytes]], str]:
    """Held-out renders of two runs side by side: for each view both runs evaluated (their newest default
    evaluation folders), one PNG ground truth | A | B | error A | error B. Returns the figures and a note
    (what is missing, which folders were used)."""
    from PIL import Image

    names = (run_a.resolve().name, run_b.resolve().name)
    folders = [next(iter(eval_folders(r)), None) for r in (run_a, run_b)]
    for name, run, folder in zip(names, (run_a, run_b), folders):
        if folder is None or not (folder / "renders").is_dir():
            return [], f"{name} has no evaluated renders: run `nsr eval {run}` first."
    pngs_a = {p.name: p for p in (folders[0] / "renders").glob("view_*.png")}
    pngs_b = {p.name: p for p in (folders[1] / "renders").glob("view_*.png")}
    common = sorted(set(pngs_a) & set(pngs_b))
    note = f"{names[0]}: {folders[0].name}; {names[1]}: {folders[1].name}."
    if not common:
        return [], note + " The two runs share no evaluated view (another split or scene?)."
    figures = []
    for name in common[:max_images]:
        render_a, gt_a, error_a = _thirds(pngs_a[name])
        render_b, gt_b, error_b = _thirds(pngs_b[name])
        if render_a.shape != render_b.shape:
            note += f" {name}: renders of different sizes, not shown."
            continue
        row = np.concatenate([gt_a, render_a, render_b, error_a, error_b], axis=1)
        buffer = io.BytesIO()
        Image.fromarray(row).save(buffer, format="PNG")
        caption = (
            f"{Path(name).stem}: ground truth | {names[0]} | {names[1]} | error {names[0]} | error {names[1]}"
        )
        if np.abs(gt_a.astype(int) - gt_b.astype(int)).mean() > 2:
            caption += " (the ground truths differ: not the same scene or background?)"
        figures.append((caption, buffer.getvalue()))
    return figures, note


def find_mesh(run_dir: Path) -> Path | None:
    """The newest mesh_*.ply in the run folder or its eval folders."""
    candidates = list(run_dir.glob("mesh_*.ply")) + list(run_dir.glob("eval/step_*/mesh_*.ply"))
    return max(candidates, key=lambda p: (p.stem, p.stat().st_mtime)) if candidates else None
