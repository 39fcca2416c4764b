"""Reports: the report object built once (:func:`build_report`), the files written from it
(:func:`write_outputs`), and the nightly report of a fleet from the history store (:func:`render_from_history`).
The terminal table is :func:`pytest_energy.report.terminal.render`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..config import path_setting
from . import exports, html
from .fleet import Fleet, build_fleet
from .model import Report, build_report

__all__ = ["Report", "build_report", "render_from_history", "write_outputs"]


def write_outputs(report: Report, settings: Any, root: Path | None = None) -> list[str]:
    """Write the HTML report, the CodeCarbon CSV, the model-card blocks and the GitHub step summary
    as the settings ask; one line per file written. Relative paths are taken from ``root`` (default:
    the rootdir the gate judged in, else the current folder)."""
    root = root if root is not None else (Path(report.rootdir) if report.rootdir else None)
    lines = []
    html_path = path_setting(getattr(settings, "report", None), root)
    if html_path is not None:
        lines.append(html.write(report, html_path))
    csv_path = path_setting(getattr(settings, "csv", None), root)
    if csv_path is not None:
        lines.append(exports.write_emissions_csv(report, csv_path))
    cards = path_setting(getattr(settings, "model_card", None), root)
    if cards is not None:
        lines += exports.write_model_cards(report, cards)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        lines.append(exports.append_step_summary(report, Path(summary)))
    return lines


def render_from_history(history_path: Path, out_path: Path, last: int | None = None,
                        since: str | None = None) -> Fleet:
    """The nightly report of a fleet (:mod:`pytest_energy.report.fleet`) over the ``last`` runs and/or
    those started since ``since``, written as HTML to ``out_path``; returns what it showed, for the
    terminal lines (:func:`pytest_energy.report.terminal.fleet_lines`).

    Raises :class:`pytest_energy.history.HistoryError` (one line) where the store is missing or unusable,
    LookupError where the window holds no run.
    """
    from ..history import History

    fleet = build_fleet(History(history_path), last, since)
    html.write_fleet(fleet, Path(out_path))
    return fleet
