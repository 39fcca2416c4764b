"""The records as Prometheus metrics (``pip install 'pytest-energy[prometheus]'``): a text exposition file
for node_exporter's textfile collector (``--energy-prometheus PATH``, a ``*.prom`` file in the folder its
``--collector.textfile.directory`` names), written at once so a scrape never reads half a file, and a
push of the same metrics to a Pushgateway (``--energy-prometheus-push URL``: job ``pytest-energy``,
grouped by the runner as ``instance``, so each runner's last run stays).

The metrics, each a gauge (prometheus-client writes the text and escapes the label values):
``pytest_energy_net_joules_per_unit{test, unit, device_kind}`` (a record's net energy on each device kind
it spans), ``pytest_energy_gross_joules_per_unit{test, unit}``, ``pytest_energy_co2_grams{test}``,
``pytest_energy_quality{test, metric}``, ``pytest_energy_verdict{test, verdict}`` (1, its verdict in the
label: "regression", "unchanged", ... "not judged"), and the run's ``pytest_energy_gate_failed``,
``pytest_energy_records`` and ``pytest_energy_run_timestamp_seconds``. A figure that is not a finite
number (a record with no valid window) has no sample.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import needs, run_tags, verdict

if TYPE_CHECKING:
    from ..model import Report

#: The optional dependencies that install the library (``pip install "pytest-energy[prometheus]"``).
EXTRA = "prometheus"
#: What a failure's line adds, by writer, with the setting that named the target.
HINTS = {"write": "check that {source} names a file in a folder this user can write",
         "push": "check {source} (a Pushgateway URL such as http://pushgateway:9091) and that the gateway answers"}
JOB = "pytest-energy"
PUSH_TIMEOUT_SECONDS = 10.0


def registry(report: Report) -> Any:
    """A prometheus-client registry holding the report's metrics."""
    client = needs("prometheus_client", EXTRA)
    metrics = client.CollectorRegistry()

    def gauge(name: str, documentation: str, labels: list[str]) -> Any:
        return client.Gauge(f"pytest_energy_{name}", documentation, labels, registry=metrics)

    net = gauge("net_joules_per_unit", "Net energy per unit (iteration, inference, ...) of a test's record "
                "on one device kind", ["test", "unit", "device_kind"])
    gross = gauge("gross_joules_per_unit", "Gross energy per unit of a test's record, all its devices", ["test", "unit"])
    co2 = gauge("co2_grams", "Grams CO2eq of a test's record's whole measurement", ["test"])
    quality = gauge("quality", "A quality metric of a test's model case", ["test", "metric"])
    verdicts = gauge("verdict", "1 for the verdict of a test's record against its baselines", ["test", "verdict"])

    def put(metric: Any, value: Any, *labels: str) -> None:
        if isinstance(value, (int, float)) and math.isfinite(value):
            metric.labels(*labels).set(value)

    for row in report.rows:
        record = row.record
        for kind in row.kinds:
            put(net, kind.net_per_unit, row.name, record.unit, kind.kind)
        put(gross, record.per_iteration_gross_joules, row.name, record.unit)
        put(co2, record.co2_grams, row.name)
        for value in row.quality:
            put(quality, value.value, row.name, value.metric)
        verdicts.labels(row.name, verdict(row)).set(1)
    gauge("gate_failed", "1 where the energy gate failed the run", []).set(int(report.gate_failed))
    gauge("records", "Records the run measured", []).set(report.totals.records)
    gauge("run_timestamp_seconds", "When the run's report was built, in Unix seconds", []).set(time.time())
    return metrics


def text(report: Report) -> str:
    """The report's metrics in Prometheus's text exposition format (what node_exporter's textfile
    collector reads)."""
    client = needs("prometheus_client", EXTRA)
    return client.generate_latest(registry(report)).decode("utf-8")


def write(report: Report, path: Path, attachments: list[Path]) -> str:
    """Write the metrics file at ``path`` at once; the line to show."""
    from ...store.locking import atomic_write_text

    atomic_write_text(path, text(report))
    note = "" if path.suffix == ".prom" else " (node_exporter's textfile collector reads only *.prom files)"
    return f"Prometheus metrics: {path}{note}"


def push(report: Report, url: str, attachments: list[Path]) -> str:
    """Push the metrics to the Pushgateway at ``url`` (replacing this runner's last push); the line to show.
    A login in the URL (``https://user:password@gateway``) is sent as HTTP basic authentication, as a
    gateway behind a proxy asks; the line shows it as ``***``."""
    client = needs("prometheus_client", EXTRA)
    from urllib.parse import unquote, urlsplit

    from prometheus_client.exposition import basic_auth_handler, default_handler

    runner = run_tags(report).get("runner")
    parts = urlsplit(url)
    handler = default_handler
    if parts.username is not None:
        user, password = unquote(parts.username), unquote(parts.password or "")
        url = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()

        def with_login(url: str, method: str, timeout: float | None, headers: list, data: bytes) -> Any:
            return basic_auth_handler(url, method, timeout, headers, data, user, password)

        handler = with_login

    client.push_to_gateway(url, job=JOB, registry=registry(report), timeout=PUSH_TIMEOUT_SECONDS,
                           grouping_key={"instance": runner} if runner else None, handler=handler)
    return f"Prometheus metrics pushed to {url} (job {JOB}" + (f", instance {runner})" if runner else ")")
