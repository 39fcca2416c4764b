"""Reports: the report object built once (:func:`build_report`), the files written from it
(:func:`write_outputs`), the trackers' copies of it (:func:`tracker_outputs`, :mod:`.trackers`), and the
nightly report of a fleet from the history store (:func:`render_from_history`). The terminal table is
:func:`pytest_energy.report.terminal.render`.

Importing this package (as importing any of its modules does) imports none of them: the report model,
jinja2's templates and the writers load when a report is built or written, so the ``--energy-top``
listing and pytest-html's columns cost a run nothing of that.

May import: core, stats, measure, store, judge.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Sequence

from ..core import config
from ..core.config import Output

if TYPE_CHECKING:
    from .fleet import Fleet
    from .model import Report, build_report

__all__ = ["Output", "Report", "attachments", "build_report", "render_from_history", "report_outputs",
           "tracker_outputs", "write_output", "write_outputs"]


def __getattr__(name: str) -> Any:
    """``Report`` and ``build_report`` (:mod:`pytest_energy.report.model`), imported on first use."""
    if name in ("Report", "build_report"):
        from . import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def report_outputs() -> list[Output]:
    """The files written from the report: the rows of :data:`pytest_energy.core.config.OUTPUTS` that
    name a writer and are no tracker, in order."""
    return [output for output in config.OUTPUTS if output.writer and not output.tracker]


def tracker_outputs() -> list[Output]:
    """The trackers' copies of the run (MLflow, W&B, Prometheus), in order: written after every other
    output, each costing one line where it fails and never the exit status (:func:`.trackers.log`)."""
    return [output for output in config.OUTPUTS if output.tracker]


#: The outputs a tracker attaches where this run wrote them: the HTML report and the energy JSON.
ATTACHED = ("report", "json")


def attachments(settings: Any, root: Path | None, unwritten: Collection[str] = ()) -> list[Path]:
    """The files of :data:`ATTACHED` this run wrote: configured, on disk, and not among ``unwritten``
    (what the session could not write, by each output's ``what``; an old file at the path is no copy
    of this run)."""
    found = []
    for output in config.OUTPUTS:
        if output.setting in ATTACHED:
            path = output.path(settings, root)
            if path is not None and path.is_file() and output.what not in unwritten:
                found.append(path)
    return found


def write(output: Output, report: Report, path: Path) -> list[str]:
    """Write ``output`` at ``path`` with its writer (its module imported now); the lines to show."""
    module, _, function = output.writer.partition(":")
    written = getattr(importlib.import_module(module, __name__), function)(report, path)
    return written if output.lines else [written]


def write_output(output: Output, report: Report, settings: Any, root: Path | None = None,
                 attached: Sequence[Path] = ()) -> list[str]:
    """Write ``output`` where the settings (or environment) give it a path, or a tracker's URI or project;
    the lines to show ([] where it is off). A relative path is taken from ``root`` (default: the rootdir the
    gate judged in, else the current folder). A tracker attaches the files ``attached``
    (:func:`attachments`) and never raises: where it fails, its line says why and what to do."""
    root = root if root is not None else (Path(report.rootdir) if report.rootdir else None)
    target = output.target(settings, root)
    if target is None:
        return []
    if output.tracker:
        from .trackers import log

        return [log(output, report, target, list(attached), config.named(settings, output.setting))]
    assert isinstance(target, Path)
    return write(output, report, target)


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
