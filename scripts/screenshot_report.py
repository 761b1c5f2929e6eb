"""Screenshot a report page with headless Chromium (the README's docs/report-screenshot.png).

Usage: python scripts/screenshot_report.py REPORT_DIR [--output docs/report-screenshot.png]
       [--window-size 1400,2000]

REPORT_DIR is what ``llmbench report --output REPORT_DIR`` (or ``--llmbench-report``) wrote. Needs the
Debian package ``chromium``; nothing is fetched from the network.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def screenshot(report_dir: Path, output: Path, window_size: str = "1400,2000") -> Path:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium is not installed: apt-get install -y chromium")
    index = (report_dir / "index.html").resolve()
    if not index.is_file():
        raise SystemExit(f"{index} does not exist: run `llmbench report --output {report_dir}` first")
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
             f"--screenshot={output.resolve()}", f"--window-size={window_size}", "--hide-scrollbars",
             index.as_uri()],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("report_dir", type=Path)
    parser.add_argument("--output", type=Path, default=Path("docs/report-screenshot.png"))
    parser.add_argument("--window-size", default="1400,2000")
    args = parser.parse_args(argv)
    print(screenshot(args.report_dir, args.output, args.window_size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
