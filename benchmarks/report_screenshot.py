"""Render `nsr report`'s HTML page in headless Chromium and save a PNG screenshot (to look at it).

    python benchmarks/report_screenshot.py RUN [--out shot.png] [--height 2400]

Needs a Chromium binary (`apt-get install -y chromium`). WebGL runs on SwiftShader (software), so the
mesh view renders without a GPU. Writes the report first when RUN/report.html is missing.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(html: Path, out: Path, width: int = 1280, height: int = 2400, timeout: float = 120) -> Path:
    """Screenshot of a local HTML file; RuntimeError when no Chromium is installed or it fails."""
    browser = find_chromium()
    if browser is None:
        raise RuntimeError("no Chromium found (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory() as profile:
        command = [
            browser, "--headless", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
            "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={width},{height}",
            "--virtual-time-budget=5000", f"--screenshot={out}", html.resolve().as_uri(),
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0 or not out.is_file():
        raise RuntimeError(f"chromium failed ({result.returncode}): {result.stderr[-500:]}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--height", type=int, default=2400)
    args = parser.parse_args()
    html = args.run / "report.html"
    if not html.is_file():
        subprocess.run([sys.executable, "-m", "nsr.cli.main", "report", str(args.run)], check=True)
    out = screenshot(html, args.out or args.run / "report.png", height=args.height)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
