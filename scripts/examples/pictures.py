"""Make the pictures of docs/examples.md: each example's offline twin run with a report, then screenshotted.

Usage: python scripts/examples/pictures.py [NAME ...] [--workdir build/examples] [--output-dir docs/examples]
       [--full | --reuse] [--window-size 1700,2300]

For each example (fixtures/examples.py; default: all), in WORKDIR/NAME: the suite's benchmark files and, for
a tiny twin, the tiny models; then ``python -m pytest benchmarks --llmbench-matrix=examples/NAME.offline.toml
--llmbench-report=report`` in a subprocess, with the short settings the tests use (one timed round, two
quality items per data set, 8 new tokens, the models in the pytest process, one thread) unless ``--full``;
the run is saved in WORKDIR/NAME/runs. ``--reuse`` runs nothing: it writes the report again from that saved
run (``llmbench report``), for a picture of a changed report without measuring again.
The report's page, cut to its title, "Which one to pick" and the plots (the whole page where those headings
are missing) and as wide as the window, is screenshotted with headless Chromium (scripts/screenshot_report.py)
into OUTPUT_DIR/NAME.png.

The real-model twins load Gemma 3 270M from the llmbench cache (``LLMBENCH_CACHE_DIR``, default
~/.cache/llmbench; converted once, about a minute). Nothing is downloaded. Needs the Debian package chromium.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/: screenshot_report
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: fixtures
from fixtures.examples import EXAMPLES, REPO, SHORT_ARGS, Example, build_tiny_models, example, twin_workspace

from screenshot_report import screenshot

#: The report's sections the picture keeps, by the ids of their headings: from the first to the second.
KEPT = ('<h2 id="decision">', '<h2 id="history">')
#: CSS laid over the page's own in the picture.
WIDE = "body{max-width:none}.wide{overflow-x:visible}"


def run_twin(entry: Example, workdir: Path, full: bool) -> Path:
    """Run ``entry``'s twin with a report in a fresh ``workdir/NAME``; returns the report's folder."""
    root = workdir / entry.name
    shutil.rmtree(root, ignore_errors=True)
    tiny = None if entry.real_model else build_tiny_models(workdir / "tiny")
    twin_workspace(root, tiny)
    short = ["--benchmark-storage=runs", "--benchmark-autosave"] if full else [*SHORT_ARGS, "--llmbench-threads=1"]
    command = [sys.executable, "-m", "pytest", "benchmarks", f"--llmbench-matrix={entry.twin}",
               "--llmbench-report=report", *short]  # fmt: skip
    print(f"{entry.name}: {' '.join(command)} (in {root})", flush=True)
    subprocess.run(command, cwd=root, check=True)
    return root / "report"


def report_again(entry: Example, workdir: Path) -> Path:
    """Write the report of the twin's run saved in ``workdir/NAME/runs`` again; returns its folder."""
    root = workdir / entry.name
    if not (root / "runs").is_dir():
        raise SystemExit(f"--reuse: {root / 'runs'} does not exist: run without --reuse first")
    command = [sys.executable, "-m", "llmbench.cli", "report", "--storage", "runs", "--output", "report"]
    print(f"{entry.name}: {' '.join(command)} (in {root})", flush=True)
    subprocess.run(command, cwd=root, check=True)
    return root / "report"


def cut_page(report: Path, into: Path) -> Path:
    """A copy of the report's page with its head and title, then the sections :data:`KEPT` names, as
    ``into/index.html``; the whole page where a heading is missing. Returns ``into``."""
    page = (report / "index.html").read_text(encoding="utf-8")
    start, end = (page.find(marker) for marker in KEPT)
    title_end = page.find("<nav>")
    if min(start, end, title_end) >= 0 and title_end < start < end:
        page = page[:title_end] + page[start:end] + "</body></html>\n"
    # The page as wide as the window: the decision table whole, not in its scrolled box.
    page = page.replace("</head>", f"<style>{WIDE}</style></head>", 1)
    into.mkdir(parents=True, exist_ok=True)
    (into / "index.html").write_text(page, encoding="utf-8")
    return into


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("names", nargs="*", help=f"examples (default: all): {', '.join(e.name for e in EXAMPLES)}")
    parser.add_argument("--workdir", type=Path, default=REPO / "build" / "examples")
    parser.add_argument("--output-dir", type=Path, default=REPO / "docs" / "examples")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--full", action="store_true", help="the twins' own settings, not the tests' short ones")
    how.add_argument("--reuse", action="store_true", help="no run: the report again from the run saved before")
    parser.add_argument("--window-size", default="1700,2300")
    args = parser.parse_args(argv)
    entries = [example(name) for name in args.names] if args.names else list(EXAMPLES)
    workdir = args.workdir.resolve()
    for entry in entries:
        report = report_again(entry, workdir) if args.reuse else run_twin(entry, workdir, args.full)
        page = cut_page(report, workdir / entry.name / "picture")
        print(screenshot(page, args.output_dir / f"{entry.name}.png", args.window_size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
