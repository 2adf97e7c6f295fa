"""The tables of a batch: OUT/results.csv (one row per run), OUT/results.json (the same rows and how the batch
ran) and OUT/index.html (the table, each run linked to its report). All written atomically."""

from __future__ import annotations

import csv
import dataclasses
import datetime
import html
import io
import json
import math
from pathlib import Path

from nsr.atomic import atomic_write
from nsr.batch.pipeline import RunResult

COLUMNS = [f.name for f in dataclasses.fields(RunResult)]

# (column, header, format) of the index page's table.
SHOWN = [
    ("scene", "scene", "s"),
    ("preset", "preset", "s"),
    ("variant", "variant", "s"),
    ("budget", "budget", "s"),
    ("seed", "seed", "d"),
    ("status", "status", "s"),
    ("seconds", "wall s", ".0f"),
    ("setup_seconds", "first step s", ".1f"),
    ("steps", "steps", "d"),
    ("it_per_s", "it/s", ".1f"),
    ("gpu_mem_gib", "GPU GiB", ".2f"),
    ("chamfer_pct", "Chamfer %", ".3f"),
    ("detail_chamfer_pct", "detail Chamfer %", ".3f"),
    ("chamfer_icp_pct", "Chamfer after ICP %", ".3f"),
    ("fscore", "F-score", ".3f"),
    ("psnr", "PSNR", ".2f"),
    ("psnr_mask", "PSNR mask", ".2f"),
    ("train_psnr", "train PSNR", ".2f"),
    ("inv_s", "inv_s", ".0f"),
    ("ssim", "SSIM", ".4f"),
    ("rotation_deg_mean", "rot. mean deg", ".3f"),
    ("rotation_deg_max", "rot. max deg", ".3f"),
    ("centre_pct_mean", "centre mean %", ".3f"),
    ("centre_pct_max", "centre max %", ".3f"),
    ("attempt", "attempt", "d"),
]


def write_results(out: str | Path, results: list[RunResult], info: dict) -> None:
    """OUT/results.csv, OUT/results.json and OUT/index.html for these runs (`info`: how the batch ran)."""
    out = Path(out)
    rows = [dataclasses.asdict(r) for r in results]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    atomic_write(out / "results.csv", lambda f: f.write(buffer.getvalue().encode()))
    text = json.dumps({"batch": info, "runs": rows}, indent=1)
    atomic_write(out / "results.json", lambda f: f.write(text.encode()))
    page = index_html(results, info)
    atomic_write(out / "index.html", lambda f: f.write(page.encode()))


def read_results(out: str | Path) -> list[dict]:
    """The rows of OUT/results.json."""
    return json.loads((Path(out) / "results.json").read_text())["runs"]


def _cell(value, spec: str) -> str:
    if value is None or value == "" or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, spec)


def index_html(results: list[RunResult], info: dict) -> str:
    """One page: how the batch ran, then the table of runs, each linked to its report."""
    ok = sum(r.status == "ok" for r in results)
    stopped = sum(r.status == "interrupted" for r in results)
    when = datetime.datetime.fromtimestamp(info.get("started", 0), datetime.timezone.utc)
    summary = (
        f"{len(results)} of {info.get('runs', len(results))} runs reported: {ok} ok,"
        f" {len(results) - ok - stopped} failed, {stopped} interrupted (resumed by the next invocation)"
        f" ({info.get('skipped', 0)} finished by an earlier invocation). Started {when:%Y-%m-%d %H:%M} UTC,"
        f" {info.get('seconds', 0):.0f} s so far; {info.get('backend', '')}. Jobs file: {info.get('jobs', '')}."
    )
    warm = info.get("warm_up") or []
    if warm:
        rows = []
        for w in warm:
            outcome = f"failed ({w['error']})" if w["error"] else f"{w['steps']} steps"
            rows.append(f"{w['config']} {outcome} in {w['seconds']:.1f} s")
        summary += f" Untimed warm-up before the runs (`warm_up`): {'; '.join(rows)}."
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h, _ in SHOWN)
    lines = []
    for r in results:
        name = html.escape(r.name)
        link = f"<a href='{html.escape(r.report)}'>{name}</a>" if r.report else name
        cells = "".join(f"<td>{html.escape(_cell(getattr(r, k), f))}</td>" for k, _, f in SHOWN)
        error = f"<td class='error'>{html.escape(r.error)}</td>" if r.error else "<td></td>"
        lines.append(f"<tr class='{html.escape(r.status)}'><td>{link}</td>{cells}{error}</tr>")
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>NSR batch</title><style>"
        "body{font-family:sans-serif;margin:24px}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}td:first-child{text-align:left}"
        "tr.failed{background:#fde8e8}tr.interrupted{background:#fdf6e0}td.error{text-align:left;color:#a00;max-width:40em}"
        "</style></head><body><h1>NSR batch</h1>"
        f"<p>{html.escape(summary)}</p><p><a href='results.csv'>results.csv</a> · "
        "<a href='results.json'>results.json</a></p>"
        f"<table><tr><th>run (report)</th>{head}<th>error</th></tr>{''.join(lines)}</table>"
        "<p>Chamfer in % of the ground truth's bounding-box diagonal; F-score at 0.5% of it; PSNR and SSIM"
        " on the held-out views; camera errors after training, aligned to the ground truth.</p>"
        "</body></html>"
    )


__all__ = ["COLUMNS", "index_html", "read_results", "write_results"]
