"""The HTML report in a real browser: Debian's headless Chromium renders it, and the test reads the DOM
Chromium built, the network log it kept, and a screenshot (kept in the test's tmp folder).

The suites' kind of report (:func:`make_suite_run`: a run with a missed quality budget and a failed test) is
also measured as a person sees it at 1280 px: a small script, added only to the test's copy of the page,
writes what Chromium laid out (page width, the headline's colours, every chart's text boxes) into the DOM
that ``--dump-dom`` prints.

Skipped, with the reason, where Chromium is not installed (``apt-get install -y chromium``).
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from html import unescape
from pathlib import Path

import pytest

from pytest_energy.testing.records import make_judgement, make_record, make_run_info, make_suite_run, make_verdict
from pytest_energy.report import build_report, html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install -y chromium)")

EVIL = "suites/test_x.py::test_name[<script>document.title='pwned'</script>]"
TITLE = "pytest-energy report"


def chromium(page: Path, tmp_path: Path, *action: str) -> tuple[str, Path]:
    """Run headless Chromium on ``page`` with ``action`` flags; its stdout and its network log."""
    netlog = tmp_path / f"netlog-{len(list(tmp_path.glob('netlog-*')))}.json"
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}", f"--log-net-log={netlog}", *action, page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, netlog


def page_requests(netlog: Path) -> list[str]:
    """URLs the page itself asked for (Chromium's own service requests carry "not an origin")."""
    log = json.loads(netlog.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in log["events"]:
        params = event.get("params", {})
        if event["type"] == start and params.get("url") and params.get("initiator") != "not an origin":
            urls.append(params["url"])
    return [url for url in urls if not url.startswith(("file:", "data:"))]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("browser")
    records = [
        make_record("suites/test_cls.py::test_sst2", 0.9, unit="inference", quality={"accuracy": 0.91},
                    timeline=[(i / 10, 80 + 200 * (3 <= i <= 12)) for i in range(16)]),
        make_record(EVIL, 2.5, unit="inference", quality={"accuracy": 0.87}),
        make_record("suites/test_sum.py::test_t5_small", 7.25, unit="inference", quality={"accuracy": 0.93}),
    ]
    verdicts = [make_verdict("suites/test_cls.py::test_sst2", "unchanged", 1.01, 0.99, 1.03),
                make_verdict("suites/test_sum.py::test_t5_small", "regression", 1.18, 1.12, 1.24)]

    class History:
        def series(self, fingerprint_id=None):
            values = [0.9] * 8 + [1.05] * 6
            return {"suites/test_cls.py::test_sst2": [(f"2026-11-{i + 1:02d}", v, "unchanged")
                                                      for i, v in enumerate(values)]}

    report = build_report(records, make_judgement(verdicts), make_run_info(), History())
    page = tmp_path / "report.html"
    page.write_text(html.render(report), encoding="utf-8")
    dom, netlog = chromium(page, tmp_path, "--dump-dom")
    return records, dom, netlog, page, tmp_path


def test_escaped_script_does_not_run_and_is_shown_as_text(rendered):
    _, dom, _, _, _ = rendered
    assert f"<title>{TITLE}</title>" in dom  # the script would have set the title to 'pwned'
    assert "<script" not in dom.lower()
    assert "test_name[&lt;script&gt;document.title='pwned'&lt;/script&gt;]" in dom


def test_regressions_come_first_with_numbers_of_the_records(rendered):
    records, dom, _, _, _ = rendered
    sections = re.findall(r'<section id="([^"]+)"', dom)
    assert sections.index("regressions") < sections.index("results") < sections.index("details")
    rows = re.findall(r'<tr class="(s-[a-z]+)" data-name="([^"]+)">', dom[dom.index('id="results-table"'):])
    assert rows[0] == ("s-reg", "suites/test_sum.py::test_t5_small")
    for record in records:
        name = record.name.replace("<", "&lt;").replace(">", "&gt;")
        row = dom[dom.index(f'data-name="{name}"'):]
        value = re.search(r'class="num energy" data-value="([^"]+)"', row).group(1)
        assert float(value) == record.per_iteration_net_joules


def test_charts_are_drawn_as_inline_svg(rendered):
    _, dom, _, _, _ = rendered
    assert dom.count("<svg") == 3  # energy against accuracy, one power timeline, one trend
    assert 'class="front"' in dom and 'class="power"' in dom and 'class="step"' in dom


def test_the_page_makes_no_request_and_the_check_would_see_one(rendered):
    _, _, netlog, _, tmp_path = rendered
    assert page_requests(netlog) == []
    control = tmp_path / "control.html"
    control.write_text('<img src="http://127.0.0.1:9/pixel.png">', encoding="utf-8")
    _, control_log = chromium(control, tmp_path, "--dump-dom")
    assert page_requests(control_log) == ["http://127.0.0.1:9/pixel.png"]


def test_screenshot_is_kept(rendered):
    _, _, _, page, tmp_path = rendered
    shot = tmp_path / "report.png"
    chromium(page, tmp_path, "--window-size=1280,2200", f"--screenshot={shot}")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1280, 2200)
    assert len(data) > 40_000  # a drawn page, not a blank one


# -- the suites' report as a person sees it ------------------------------------------------------------
MEASURE = """
(function () {
  const box = (element) => { const r = element.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const passed = document.createElement("span");
  passed.className = "gate passed";
  document.body.appendChild(passed);
  const found = {
    width: window.innerWidth, scrollWidth: document.documentElement.scrollWidth,
    headline: document.getElementById("headline").textContent,
    badge: document.getElementById("gate-state").textContent,
    colours: {badge: getComputedStyle(document.getElementById("gate-state")).backgroundColor,
              headline: getComputedStyle(document.getElementById("headline")).color,
              passed: getComputedStyle(passed).backgroundColor},
    rows: [...document.querySelectorAll("#results-table tbody tr")].map((row) => row.getBoundingClientRect().height),
    boxes: [...document.querySelectorAll(".table-box")].map((b) => [b.scrollWidth, b.clientWidth]),
    charts: [...document.querySelectorAll("svg")].map((svg) => ({
      label: svg.getAttribute("aria-label") || "", box: box(svg),
      texts: [...svg.querySelectorAll("text")].map((text) => ({text: text.textContent, box: box(text)})),
    })),
  };
  passed.remove();
  const out = document.createElement("pre");
  out.id = "measured";
  out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
})();
"""


@pytest.fixture(scope="module")
def seen(tmp_path_factory):
    """What Chromium laid out of the suites' failing report, at 1280 px and at 800 px wide."""
    tmp_path = tmp_path_factory.mktemp("seen")
    report = build_report(*make_suite_run(failing=True))
    page = tmp_path / "suites.html"
    page.write_text(html.render(report).replace("</body>", f"<script>{MEASURE}</script></body>"), encoding="utf-8")
    widths = {}
    for width in (1280, 800):
        dom, _ = chromium(page, tmp_path, f"--window-size={width},900", "--dump-dom")
        text = re.search(r'<pre id="measured">(.*?)</pre>', dom, re.S).group(1)
        widths[width] = json.loads(unescape(text))
    return report, widths


def test_the_page_is_no_wider_than_a_laptop_window(seen):
    report, widths = seen
    assert widths[1280]["width"] == 1280
    assert widths[1280]["scrollWidth"] <= 1280
    assert len(widths[1280]["rows"]) == len(report.rows) == 14
    assert max(widths[1280]["rows"]) < 80  # one compact line per record (a long name wraps once or twice)
    # Narrower, the page still fits: the tables scroll inside their own box.
    assert widths[800]["scrollWidth"] <= 800
    assert all(inner > shown for inner, shown in widths[800]["boxes"])


def test_a_failing_run_says_so_in_its_headline_and_is_not_green(seen):
    report, widths = seen
    shown = widths[1280]
    assert shown["badge"] == "FAILED"
    assert shown["headline"] == report.headline.text
    assert shown["headline"].startswith("FAILED: 1 regression, 1 quality budget missed, 1 test failed; 14 records: ")
    green = shown["colours"]["passed"]
    assert green == "rgb(27, 94, 32)"  # the passed badge's green, so the comparison below can fail
    assert shown["colours"]["badge"] != green and shown["colours"]["headline"] != green
    assert shown["colours"]["badge"] == shown["colours"]["headline"] == "rgb(183, 28, 28)"


def _overlap(a: list[float], b: list[float], slack: float = 1.0) -> bool:
    return a[0] < b[2] - slack and b[0] < a[2] - slack and a[1] < b[3] - slack and b[1] < a[3] - slack


def _inside(inner: list[float], outer: list[float], slack: float = 0.5) -> bool:
    return (inner[0] >= outer[0] - slack and inner[1] >= outer[1] - slack and inner[2] <= outer[2] + slack
            and inner[3] <= outer[3] + slack)



def test_every_chart_has_its_labels_inside_its_box(seen):
    charts = [chart for chart in seen[1][1280]["charts"] if chart["box"][2] > chart["box"][0]]
    assert len(charts) >= 4 and sum(len(chart["texts"]) for chart in charts) > 20
    clipped = [(chart["label"], text["text"]) for chart in charts for text in chart["texts"]
               if text["text"].strip() and not _inside(text["box"], chart["box"])]
    assert clipped == []



def test_no_two_labels_of_a_chart_overlap(seen):
    overlapping = []
    for chart in seen[1][1280]["charts"]:
        texts = [text for text in chart["texts"] if text["text"].strip()]
        overlapping += [(chart["label"], a["text"], b["text"]) for i, a in enumerate(texts) for b in texts[i + 1:]
                        if _overlap(a["box"], b["box"])]
    assert overlapping == []
