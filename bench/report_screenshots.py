"""The HTML report's screenshots in docs/reports.md, as a reader sees it at 1280 px in headless Chromium:
``python3 -m bench.report_screenshots [--out docs/images]`` (from the repository's root; needs Debian's
``chromium``). The report is built from the suites' kind of run (:func:`make_suite_run`: a missed quality
budget and a failed test, and two trend series), so the pictures show what the docs say.

Chromium shoots the window from the top of the page: each picture is the page from a section on (the
results: one row's fold opened, as a click would), cropped to the window's height.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pytest_energy.report import build_report, html
from pytest_energy.testing.records import make_suite_run

#: (file, the section it starts at or "" for the top, window height): one picture each.
SHOTS = (("report-top.png", "", 1000), ("report-results.png", "results", 900), ("report-charts.png", "quality", 1400))


def page() -> str:
    """The suites' failing report, its first results row's fold open."""
    text = html.render(build_report(*make_suite_run(failing=True)))
    results = text.index('<table id="results-table">')
    fold = text.index('<td class="name"><details>', results) + len('<td class="name"><details')
    return text[:fold] + " open" + text[fold:]


def shoot(out: Path) -> list[Path]:
    """Write the pictures into ``out``; their paths."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("report_screenshots: Chromium is not installed (apt-get install -y chromium)")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as folder:
        text = page()
        for name, section, height in SHOTS:
            source, target = Path(folder) / f"{name}.html", out / name
            start = text.index(f'<section id="{section}">') if section else 0
            source.write_text(text[:text.index("<header>")] + text[start:] if start else text, encoding="utf-8")
            subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                            "--no-first-run", f"--user-data-dir={folder}/profile", f"--window-size=1280,{height}",
                            f"--screenshot={target}", source.as_uri()],
                           check=True, capture_output=True, timeout=120)
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images"), help="folder of the pictures")
    for path in shoot(parser.parse_args(argv).out):
        print(f"{path}: {path.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
