"""Reports: the report object built once (:func:`build_report`), the files written from it
(:func:`write_outputs`), and the nightly report of a fleet from the history store (:func:`render_from_history`).
The terminal table is :func:`pytest_energy.report.terminal.render`.

Importing this package (as importing any of its modules does) imports none of them: the report model,
jinja2's templates and the writers load when a report is built or written, so the ``--energy-top``
listing and pytest-html's columns cost a run nothing of that.

May import: core, stats, measure, store, judge.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core import config
from ..core.config import Output

if TYPE_CHECKING:
    from .fleet import Fleet
    from .model import Report, build_report

__all__ = ["Output", "Report", "build_report", "render_from_history", "report_outputs", "write_output",
           "write_outputs"]


def __getattr__(name: str) -> Any:
    """``Report`` and ``build_report`` (:mod:`pytest_energy.report.model`), imported on first use."""
    if name in ("Report", "build_report"):
        from . import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def report_outputs() -> list[Output]:
    """The outputs written from the report: the rows of :data:`pytest_energy.core.config.OUTPUTS` that
    name a writer, in order."""
    return [output for output in config.OUTPUTS if output.writer]


def write(output: Output, report: Report, path: Path) -> list[str]:
    """Write ``output`` at ``path`` with its writer (its module imported now); the lines to show."""
    module, _, function = output.writer.partition(":")
    written = getattr(importlib.import_module(module, __name__), function)(report, path)
    return written if output.lines else [written]


def write_output(output: Output, report: Report, settings: Any, root: Path | None = None) -> list[str]:
    """Write ``output`` where the settings (or environment) give it a path; the lines to show ([] where it
    is off). A relative path is taken from ``root`` (default: the rootdir the gate judged in, else the
    current folder)."""
    root = root if root is not None else (Path(report.rootdir) if report.rootdir else None)
    path = output.path(settings, root)
    return write(output, report, path) if path is not None else []


def write_outputs(report: Report, settings: Any, root: Path | None = None) -> list[str]:
    """Write each of :func:`report_outputs` that the settings (or environment) give a path: the HTML
    report, the CodeCarbon CSV, the model-card blocks, the markdown summary and the GitHub step summary;
    one line per file written (:func:`write_output`)."""
    return [line for output in report_outputs() for line in write_output(output, report, settings, root)]


def render_from_history(history_path: Path | str, out_path: Path, last: int | None = None,
                        since: str | None = None) -> Fleet:
    """The nightly report of a fleet (:mod:`pytest_energy.report.fleet`) over the ``last`` runs and/or
    those started since ``since``, written as HTML to ``out_path``; returns what it showed, for the
    terminal lines (:func:`pytest_energy.report.terminal.fleet_lines`).

    Raises :class:`pytest_energy.store.history.HistoryError` (one line) where the store is missing or unusable,
    LookupError where the window holds no run.
    """
    from ..store.history import History
    from . import html
    from .fleet import build_fleet

    fleet = build_fleet(History(history_path), last, since)
    html.write_fleet(fleet, Path(out_path))
    return fleet
