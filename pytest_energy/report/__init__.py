"""Reports: the report object built once (:func:`build_report`), the files written from it
(:func:`write_outputs`), and the nightly report from the history store (:func:`render_from_history`).
The terminal table is :func:`pytest_energy.report.terminal.render`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..config import path_setting
from ..gate import Judgement
from ..record import Carbon, RunInfo
from ..verdict import Verdict
from . import exports, html
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


def _one(write: Callable[[Report, Path], str]) -> Callable[[Report, Path], list[str]]:
    """A writer of one file, as a writer of lines."""
    return lambda report, path: [write(report, path)]


#: Every output written from the report, in order. A new format is one row here, its writer beside
#: the others (and its path setting in :data:`pytest_energy.config.OPTIONS`).
OUTPUTS = (
    Output(_one(html.write), setting="report"),
    Output(_one(exports.write_emissions_csv), setting="csv"),
    Output(exports.write_model_cards, setting="model_card"),
    Output(_one(exports.append_step_summary), environ="GITHUB_STEP_SUMMARY"),
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


def _run_info(info: dict[str, Any]) -> RunInfo | None:
    """The stored RunInfo of a run, or None where it cannot be rebuilt (an older or foreign row)."""
    try:
        return RunInfo(**{**info, "carbon": Carbon(**info["carbon"])})
    except (KeyError, TypeError):
        return None


def render_from_history(history_path: Path, out_path: Path, last: int | None = None) -> Path:
    """The nightly report: the latest run's records and verdicts, with every series' trend over the
    ``last`` runs (all where None) on the latest run's hardware and its step changes marked.

    Raises :class:`pytest_energy.history.HistoryError` (one line) where the store is missing or unusable.
    """
    from ..history import History, HistoryError

    history = History(history_path)
    runs = history.runs(last)
    if not runs:
        raise HistoryError(f"pytest-energy: history {history_path} holds no run yet; run `pytest --energy` first")
    latest, oldest = runs[0], runs[-1].started
    verdicts = [Verdict(**data) for data in history.verdicts(latest.run_id)]
    baseline_set = latest.baseline_set or "default"
    regressions = [v for v in verdicts if v.status == "regression" and v.baseline_set == baseline_set]
    judgement = Judgement(
        verdicts=verdicts,
        baseline_set=baseline_set,
        fingerprint_id=latest.fingerprint_id or "",
        new=[v.name for v in verdicts if v.status == "new" and v.baseline_set == baseline_set],
        gate_failed=latest.gate_failed,
        summary=[f"{v.name}  {v.message}" for v in regressions],
    )
    series = {name: [point for point in points if point[0] >= oldest]
              for name, points in history.series(latest.fingerprint_id).items()}
    report = build_report(
        history.records(latest.run_id), judgement, _run_info(latest.info), series=series,
        title=f"pytest-energy nightly report: {len(runs)} run{'s' if len(runs) > 1 else ''}", source="history",
    )
    html.write(report, Path(out_path))
    return Path(out_path)
