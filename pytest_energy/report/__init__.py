"""Reports: the report object built once (:func:`build_report`), the files written from it
(:func:`write_outputs`), and the nightly report from the history store (:func:`render_from_history`).
The terminal table is :func:`pytest_energy.report.terminal.render`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import exports, html
from .model import Report, build_report

__all__ = ["Report", "build_report", "render_from_history", "write_outputs"]


def write_outputs(report: Report, settings: Any, root: Path | None = None) -> list[str]:
    """Write the HTML report, the CodeCarbon CSV, the model-card blocks and the GitHub step summary
    as the settings ask; one line per file written. Relative paths are taken from ``root`` (default:
    the rootdir the gate judged in, else the current folder)."""
    root = root if root is not None else (Path(report.rootdir) if report.rootdir else None)
    lines = []
    html_path = exports.enabled_path(getattr(settings, "report", None), root)
    if html_path is not None:
        lines.append(html.write(report, html_path))
    csv_path = exports.enabled_path(getattr(settings, "csv", None), root)
    if csv_path is not None:
        lines.append(exports.write_emissions_csv(report, csv_path))
    cards = exports.enabled_path(getattr(settings, "model_card", None), root)
    if cards is not None:
        lines += exports.write_model_cards(report, cards)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        lines.append(exports.append_step_summary(report, Path(summary)))
    return lines
