"""The session as one MLflow run (``--energy-mlflow URI``; ``pip install 'pytest-energy[mlflow]'``).

The run is created through ``MlflowClient``, never MLflow's fluent state, so a suite's own runs are left
as they were: nested (``mlflow.parentRunId``) under the active run where the suite runs inside one (the
fluent API's active run, else ``MLFLOW_RUN_ID`` as ``mlflow run`` sets it), in that run's experiment; else
in ``MLFLOW_EXPERIMENT_ID``, ``MLFLOW_EXPERIMENT_NAME`` or the experiment ``pytest-energy`` (created on
first use). Its tags say the commit and branch (MLflow's own ``mlflow.source.git.*``), the runner, the
device kinds and the gate's outcome; one metric per record and figure (:func:`pytest_energy.report.trackers.figures`,
keyed ``<record>/<figure>``), each record's verdict as the tag ``verdict/<record>``, and the records as
``energy-records.json``, the HTML report and the energy JSON as artifacts where this run wrote them.

A tracking server that does not answer costs the end of the session MLflow's retries: unless the
environment sets them, two retries, backoff factor 1 and a 20 s timeout instead of MLflow's minutes.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from . import figures, needs, record_keys, run_tags, verdict

if TYPE_CHECKING:
    from ..model import Report

#: The optional dependencies that install the library (``pip install "pytest-energy[mlflow]"``).
EXTRA = "mlflow"
#: What a failure's line adds, by writer, with the setting that named the store.
HINTS = {"log_run": "check {source} (a tracking URI such as sqlite:///mlflow.db or http://host:5000) and that "
                    "the server answers"}
#: The value of --energy-mlflow that means MLflow's own tracking URI (MLFLOW_TRACKING_URI, else its default).
DEFAULT = "default"
EXPERIMENT = "pytest-energy"
#: MLflow's HTTP retries at the end of a session, where the environment does not set them.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}
#: MLflow's limits on one log_batch call.
METRICS_PER_BATCH = 1000
TAGS_PER_BATCH = 100


@contextmanager
def _http_defaults() -> Iterator[None]:
    """:data:`HTTP_DEFAULTS` in the environment while the run is logged, where it does not set them."""
    added = [name for name in HTTP_DEFAULTS if name not in os.environ]
    os.environ.update({name: HTTP_DEFAULTS[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def _parent(mlflow: Any, client: Any) -> Any:
    """The run the suite runs inside, where this store has it (None otherwise)."""
    active = mlflow.active_run()
    run_id = active.info.run_id if active is not None else os.environ.get("MLFLOW_RUN_ID")
    if not run_id:
        return None
    try:
        return client.get_run(run_id)
    except Exception:  # another store's run: this one is logged on its own
        return None


def _experiment(client: Any, parent: Any) -> str:
    if parent is not None:
        return str(parent.info.experiment_id)
    if os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return os.environ["MLFLOW_EXPERIMENT_ID"]
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name))
    except Exception:  # another runner created it meanwhile
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def log_run(report: Report, target: str, attachments: list[Path]) -> str:
    """Log ``report`` as one run in the MLflow store at ``target`` (:data:`DEFAULT`: MLflow's own); the
    line to show."""
    mlflow = needs("mlflow", EXTRA)
    from mlflow.entities import Metric, RunTag
    from mlflow.tracking import MlflowClient

    uri = None if target == DEFAULT else target
    with _http_defaults():
        client = MlflowClient(tracking_uri=uri)
        parent = _parent(mlflow, client)
        experiment = _experiment(client, parent)
        tags = {"mlflow.source.git.commit": report.run.git_commit if report.run else None,
                "mlflow.source.git.branch": report.run.branch if report.run else None,
                **{f"pytest_energy.{name}": value for name, value in run_tags(report).items()}}
        if parent is not None:
            tags["mlflow.parentRunId"] = parent.info.run_id
        run_name = f"pytest-energy {report.run.run_id}" if report.run else "pytest-energy"
        run = client.create_run(experiment, tags={k: str(v) for k, v in tags.items() if v}, run_name=run_name)
        run_id = run.info.run_id
        try:
            now = int(time.time() * 1000)
            keys = record_keys([row.name for row in report.rows])
            metrics = [Metric(f"{keys[row.name]}/{name}", value, now, 0)
                       for row in report.rows for name, value in figures(row).items()]
            totals = {"total/gross_joules": report.totals.gross_joules, "total/net_joules": report.totals.net_joules,
                      "total/co2_grams": report.totals.co2_grams, "total/records": float(report.totals.records)}
            metrics += [Metric(name, value, now, 0) for name, value in totals.items() if math.isfinite(value)]
            verdicts = [RunTag(f"verdict/{keys[row.name]}", verdict(row)) for row in report.rows]
            for batch in _batches(metrics, METRICS_PER_BATCH):
                client.log_batch(run_id, metrics=batch)
            for batch in _batches(verdicts, TAGS_PER_BATCH):
                client.log_batch(run_id, tags=batch)
            client.log_dict(run_id, [{"test": row.name, "key": keys[row.name], "unit": row.record.unit,
                                      "verdict": verdict(row), "device_kinds": [k.kind for k in row.kinds],
                                      **figures(row)} for row in report.rows], "energy-records.json")
            for path in attachments:
                client.log_artifact(run_id, str(path))
        except BaseException:
            try:  # the run says it is incomplete, where the store still answers
                client.set_terminated(run_id, "FAILED")
            except Exception:
                pass
            raise
        client.set_terminated(run_id, "FINISHED")
    where = uri or mlflow.get_tracking_uri()
    nested = f", nested under run {parent.info.run_id}" if parent is not None else ""
    return (f"MLflow run {run_id} logged to {where} (experiment {experiment}{nested}): {len(metrics)} metrics, "
            f"{len(attachments) + 1} artifacts")
