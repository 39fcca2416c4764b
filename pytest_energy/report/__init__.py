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
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..core.config import path_setting

if TYPE_CHECKING:
    from .fleet import Fleet
    from .model import Report, build_report

__all__ = ["OUTPUTS", "Output", "Report", "build_report", "render_from_history", "write_outputs"]


@dataclass(frozen=True)
class Output:
    """A file (or folder) written from the report: its writer, which returns the lines to show, and
    the setting that names its path (relative to the root) or the environment variable that does."""

    write: Callable[[Report, Path], list[str]]
    setting: str = ""
    environ: str = ""

    def path(self, settings: Any, root: Path | None) -> Path | None:
        """Where this output goes, or None where it is off."""
        if self.environ:
            value = os.environ.get(self.environ)
            return Path(value) if value else None
        return path_setting(getattr(settings, self.setting, None), root)


def _writer(module: str, function: str, *, one: bool = True) -> Callable[[Report, Path], list[str]]:
    """The writer ``function`` of this package's ``module``, imported when it first writes; ``one``: it
    writes one file and returns its line, made a list of lines."""

    def write(report: Report, path: Path) -> list[str]:
        written = getattr(importlib.import_module(f".{module}", __name__), function)(report, path)
        return [written] if one else written

    return write


def __getattr__(name: str) -> Any:
    """``Report`` and ``build_report`` (:mod:`pytest_energy.report.model`), imported on first use."""
    if name in ("Report", "build_report"):
        from . import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Every output written from the report, in order. A new format is one row here, its writer beside
#: the others (and its path setting in :data:`pytest_energy.core.config.OPTIONS`).
OUTPUTS = (
    Output(_writer("html", "write"), setting="report"),
    Output(_writer("exports", "write_emissions_csv"), setting="csv"),
    Output(_writer("exports", "write_model_cards", one=False), setting="model_card"),
    Output(_writer("exports", "append_step_summary"), environ="GITHUB_STEP_SUMMARY"),
)


def write_outputs(report: Report, settings: Any, root: Path | None = None) -> list[str]:
    """Write each of :data:`OUTPUTS` that the settings (or environment) give a path: the HTML
    report, the CodeCarbon CSV, the model-card blocks and the GitHub step summary; one line per file
    written. Relative paths are taken from ``root`` (default: the rootdir the gate judged in, else the
    current folder)."""
    root = root if root is not None else (Path(report.rootdir) if report.rootdir else None)
    lines = []
    for output in OUTPUTS:
        path = output.path(settings, root)
        if path is not None:
            lines += output.write(report, path)
    return lines


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
