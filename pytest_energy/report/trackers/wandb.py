"""The session as one Weights & Biases run (``--energy-wandb [ENTITY/]PROJECT``; ``pip install
'pytest-energy[wandb]'``).

Offline unless ``WANDB_MODE`` says otherwise: pytest-energy makes no network call of its own accord, and a
CI job without W&B credentials keeps its run in ``WANDB_DIR`` (``wandb sync`` uploads it later); a
``WANDB_MODE=online`` job logs it online. The run (job type ``pytest-energy``, its own run beside any the
suite made) holds the run's tags as its config (commit, branch, runner, device kinds, the gate's outcome),
one summary metric per record and figure (``<record>/<figure>``, as the MLflow run's keys), the table
``energy_records`` (one row per record: its unit, verdict, device kinds and figures), and the HTML report
and energy JSON this run wrote as the artifact ``pytest-energy-report``. No console capture: pytest's
output is left alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from . import TrackerError, figures, needs, record_keys, run_tags, verdict

if TYPE_CHECKING:
    from ..model import Report

#: The optional dependencies that install the library (``pip install "pytest-energy[wandb]"``).
EXTRA = "wandb"
#: What a failure's line adds, by writer, with the setting that named the project.
HINTS = {"log_run": "check {source} (a project name, or entity/project), WANDB_MODE and, online, `wandb login`"}
COLUMNS = ("test", "unit", "verdict", "device_kinds", "net_joules_per_unit", "gross_joules_per_unit",
           "wh_per_1000_inferences", "co2_grams")


def log_run(report: Report, target: str, attachments: list[Path]) -> str:
    """Log ``report`` as one W&B run in the project ``target``; the line to show."""
    wandb = needs("wandb", EXTRA)
    entity, _, project = target.rpartition("/")
    if not project or "/" in entity or any(mark in project for mark in "\\#?%:"):
        raise TrackerError(f"{target!r} is not a W&B project name or entity/project")
    mode = os.environ.get("WANDB_MODE") or "offline"
    tags = run_tags(report)
    run = wandb.init(project=project, entity=entity or None, mode=mode, job_type="pytest-energy",
                     name=f"pytest-energy {tags.get('run_id', '')}".strip(), config=tags,
                     tags=[tags["outcome"]], reinit="create_new",
                     settings=wandb.Settings(console="off", silent=True))
    try:
        keys = record_keys([row.name for row in report.rows])
        summary = {f"{keys[row.name]}/{name}": value for row in report.rows for name, value in figures(row).items()}
        summary.update({"total/gross_joules": report.totals.gross_joules, "total/net_joules": report.totals.net_joules,
                        "total/co2_grams": report.totals.co2_grams, "total/records": report.totals.records,
                        "outcome": tags["outcome"]})
        run.summary.update(summary)
        quality = sorted({name for row in report.rows for name in figures(row) if name.startswith("quality_")})
        table = wandb.Table(columns=[*COLUMNS, *quality])
        for row in report.rows:
            values = figures(row)
            table.add_data(row.name, row.record.unit, verdict(row), ", ".join(k.kind for k in row.kinds),
                           *(values.get(name) for name in [*COLUMNS[4:], *quality]))
        run.log({"energy_records": table})
        if attachments:
            artifact = wandb.Artifact("pytest-energy-report", type="energy-report")
            for path in attachments:
                artifact.add_file(str(path))
            run.log_artifact(artifact)
        folder = Path(run.dir).parent
        url = run.url if mode == "online" else None
    except BaseException:
        run.finish(exit_code=1)
        raise
    run.finish()
    if url:
        return f"W&B run {run.id} logged: {url}"
    if mode in ("offline", "dryrun"):
        return f"W&B run {run.id} saved offline in {folder} (`wandb sync {folder}` uploads it)"
    return f"W&B run {run.id} ({mode})"
