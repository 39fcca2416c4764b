"""The trackers (issue 27): ``--energy-mlflow`` leaves one MLflow run whose metrics hold each record's
energy, read back from a real SQLite tracking store; ``--energy-wandb`` leaves a W&B offline run folder
with the records, read back from its transaction log; ``--energy-prometheus`` writes a file prometheus-
client's own parser reads as one sample per record, and ``--energy-prometheus-push`` sends it to a
Pushgateway (a local HTTP server here). A tracker that is missing, misconfigured or unreachable costs
one line and neither the run's other outputs nor its exit status. No test makes a network call beyond
127.0.0.1.

The pytester runs measure through the fake RAPL package of the gate's integration tests, whose counter
advances by exactly the joules a test spends: test_model spends WORK J per call, test_steady 2 J.
"""

from __future__ import annotations

import base64
import http.server
import importlib
import json
import socket
import threading
import warnings
from pathlib import Path
from typing import Any, Iterator

import pytest
from pytest_energy.testing.records import make_judgement, make_record, make_run_info, make_verdict
from test_gate_integration import CONFTEST, run_energy
from test_report_headline import ARGS, TESTS

from pytest_energy.report import build_report
from pytest_energy.report.trackers import figures, record_keys

WORK = 3.0
NAMES = ("test_run.py::test_model", "test_run.py::test_steady")
JOULES = {"test_run.py::test_model": WORK, "test_run.py::test_steady": 2.0}


@pytest.fixture(scope="module", autouse=True)
def _libraries_imported_once() -> None:
    """pytester restores ``sys.modules`` after each test, so a library first imported inside one would be
    imported again by the next (SQLAlchemy's ORM under MLflow's store breaks so): the trackers' libraries,
    where installed, are imported here, before any test's snapshot."""
    for name in ("mlflow.tracking", "mlflow.store.tracking.sqlalchemy_store", "wandb.proto.wandb_internal_pb2",
                 "prometheus_client.parser"):
        with warnings.catch_warnings():  # MLflow's own deprecation warnings from SQLAlchemy: not ours
            warnings.simplefilter("ignore")
            try:
                importlib.import_module(name)
            except ImportError:
                pass


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """Run the two measured tests with the trackers' options ``extra``; the result."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_run=TESTS.format(work=WORK))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)

    def go(*extra: str) -> pytest.RunResult:
        if "--energy-wandb" in extra:  # W&B keeps a run's settings (its folders) in its process: one each
            return pytester.runpytest_subprocess(*ARGS, *extra)
        return run_energy(pytester, *ARGS, *extra)

    return go


def _closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _tracker_lines(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if "could not send" in line or "could not write" in line]


def _others_written(result: pytest.RunResult, path: Path) -> None:
    """The run passed, as its JSON says, with its HTML report: a tracker's failure cost neither."""
    assert result.ret == 0
    assert json.loads((path / "out.json").read_text())["gate"]["headline"]["outcome"] == "passed"
    assert (path / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def _report(*names: str, joules: float = 2.0) -> Any:
    records = [make_record(name, joules) for name in names]
    return build_report(records, make_judgement([make_verdict(n, "unchanged") for n in names]), make_run_info())


# -- the keys every tracker shares -----------------------------------------------------------------
def test_record_keys_are_valid_metric_names_and_never_collide():
    names = ["tests/test_a.py::test_x[cpu-1]", "tests/test_a.py::test_x[cpu 1]", "t.py::test_y[../..]",
             "t.py::test_z[" + "long" * 100 + "]", "t.py::test_w[a:b]", "t.py::test_w[a;b]"]
    keys = record_keys(names)
    assert keys["tests/test_a.py::test_x[cpu-1]"] == "tests/test_a.py/test_x_cpu-1_"
    assert len(set(keys.values())) == len(names)  # "a:b" and "a;b" both read "a_b": each has its digest
    assert keys["t.py::test_w[a:b]"].startswith("t.py/test_w_a_b_-") and all(len(k) <= 200 for k in keys.values())
    validation = pytest.importorskip("mlflow.utils.validation")
    for key in keys.values():
        validation._validate_metric_name(f"{key}/net_joules_per_unit")  # raises on a key MLflow refuses
        validation._validate_tag_name(f"verdict/{key}")


def test_figures_are_the_rows_finite_numbers():
    report = _report("t.py::test_a", joules=4.0)
    [row] = report.rows
    values = figures(row)
    assert values["net_joules_per_unit"] == pytest.approx(row.record.per_iteration_net_joules)
    assert values["gross_joules_per_unit"] == pytest.approx(row.record.per_iteration_gross_joules)
    assert values["co2_grams"] == pytest.approx(row.record.co2_grams) and "wh_per_1000_inferences" not in values
    assert row.kinds and row.kinds[0].net_per_unit == pytest.approx(row.record.per_iteration_net_joules)


def test_the_trackers_attach_only_the_files_this_run_wrote(tmp_path):
    from pytest_energy.core.config import resolve
    from pytest_energy.report import attachments

    settings = resolve(True, {}, lambda name: None, environ={})
    settings.values.update({"json": "out.json", "report": "report.html"})
    (tmp_path / "out.json").write_text("{}")
    (tmp_path / "report.html").write_text("an earlier run's page")
    assert attachments(settings, tmp_path) == [tmp_path / "out.json", tmp_path / "report.html"]
    assert attachments(settings, tmp_path, ["the HTML report"]) == [tmp_path / "out.json"]
    settings.values["report"] = None
    (tmp_path / "out.json").unlink()
    assert attachments(settings, tmp_path) == []


# -- MLflow ------------------------------------------------------------------------------------------
@pytest.fixture
def mlflow_client():
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed (pip install 'pytest-energy[mlflow]')")
    pytest.importorskip("alembic", reason="MLflow's SQLite store needs alembic (the mlflow extra installs it)")
    from mlflow.tracking import MlflowClient

    return MlflowClient


def test_mlflow_run_holds_each_records_energy(run, pytester, mlflow_client):
    result = run("--energy-mlflow", "sqlite:///m.db")
    assert result.ret == 0, result.stdout.str()
    [line] = [line for line in result.outlines if "MLflow run" in line]
    assert "logged to sqlite:///m.db (experiment" in line
    client = mlflow_client(f"sqlite:///{pytester.path / 'm.db'}")
    experiment = client.get_experiment_by_name("pytest-energy")
    [logged] = client.search_runs([experiment.experiment_id])
    assert logged.info.status == "FINISHED" and logged.info.run_name.startswith("pytest-energy ")
    metrics, tags = logged.data.metrics, logged.data.tags
    for name, joules in JOULES.items():
        key = name.replace("::", "/")
        assert metrics[f"{key}/net_joules_per_unit"] == pytest.approx(joules, rel=0.1)
        assert metrics[f"{key}/gross_joules_per_unit"] >= metrics[f"{key}/net_joules_per_unit"] * 0.99
        assert metrics[f"{key}/co2_grams"] > 0
        assert tags[f"verdict/{key}"] == "new"  # no baselines yet
    assert metrics["total/records"] == 2
    document = json.loads((pytester.path / "out.json").read_text())
    assert tags["pytest_energy.outcome"] == "passed" and tags["pytest_energy.exit_status"] == "0"
    assert tags["pytest_energy.run_id"] == document["session"]["run_id"]
    assert tags["pytest_energy.runner"] == document["session"]["fingerprint"]["id"]
    assert tags["pytest_energy.device_kinds"].startswith("rapl: ")
    artifacts = {a.path for a in client.list_artifacts(logged.info.run_id)}
    assert artifacts == {"energy-records.json", "report.html", "out.json"}
    records = json.loads(Path(client.download_artifacts(logged.info.run_id, "energy-records.json",
                                                        str(pytester.path))).read_text())
    assert [r["test"] for r in records] == sorted(NAMES) and all(r["verdict"] == "new" for r in records)


def test_mlflow_nests_under_the_active_run(tmp_path, monkeypatch, mlflow_client):
    import mlflow

    from pytest_energy.report.trackers import mlflow as tracker

    monkeypatch.chdir(tmp_path)  # where the store's experiments keep their artifacts (./mlruns)
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # "default": MLflow's own URI, the suite's run's store
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run(run_name="training") as parent:
            line = tracker.log_run(_report("t.py::test_a"), "default", [])
    finally:
        mlflow.set_tracking_uri(None)
    assert f"nested under run {parent.info.run_id}" in line
    client = mlflow_client(uri)
    [child] = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert child.data.metrics["t.py/test_a/net_joules_per_unit"] > 0


def test_an_experiment_another_runner_created_meanwhile_is_used(monkeypatch):
    """Two runners logging their first run at once: the one whose create_experiment is refused uses the
    other's experiment."""
    from types import SimpleNamespace

    from pytest_energy.report.trackers import mlflow as tracker

    class Client:
        found: list[Any] = [None, SimpleNamespace(experiment_id="7")]

        def get_experiment_by_name(self, name: str) -> Any:
            assert name == "pytest-energy"
            return self.found.pop(0)

        def create_experiment(self, name: str) -> str:
            raise RuntimeError("RESOURCE_ALREADY_EXISTS")

    for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    assert tracker._experiment(Client(), None) == "7"


@pytest.mark.parametrize("uri", ["http://127.0.0.1:{port}", "nosuchscheme://x"])
def test_an_unreachable_or_wrong_mlflow_store_costs_one_line(run, pytester, mlflow_client, uri):
    result = run("--energy-mlflow", uri.format(port=_closed_port()))
    [line] = _tracker_lines(result)
    assert line.startswith("pytest-energy: could not send the MLflow run (--energy-mlflow): ")
    assert "check --energy-mlflow" in line and line.endswith("the run's other outputs and exit status are unaffected")
    _others_written(result, pytester.path)


def test_a_password_in_a_trackers_url_is_never_shown_nor_stored(run, pytester, mlflow_client, parse):
    """Neither in the lines nor in what the run keeps: the JSON, the history, the HTML report."""
    result = run("--energy-mlflow", f"http://energy:s3cret@127.0.0.1:{_closed_port()}",
                 "--energy-prometheus-push", f"http://push:s3cret@127.0.0.1:{_closed_port()}")
    assert "s3cret" not in result.stdout.str() + result.stderr.str()
    lines = _tracker_lines(result)
    assert len(lines) == 2 and "API request to http://***@127.0.0.1:" in lines[0]
    settings = json.loads((pytester.path / "out.json").read_text())["session"]["settings"]
    assert settings["mlflow"].startswith("http://energy@127.0.0.1:") and settings["prometheus_push"].startswith("http://push@")
    for kept in ("out.json", "report.html", "reports/energy-history.sqlite"):
        assert b"s3cret" not in (pytester.path / kept).read_bytes()


# -- Weights & Biases ----------------------------------------------------------------------------------
def _wandb_records(path: Path) -> Iterator[Any]:
    """The records of a W&B transaction log (``run-<id>.wandb``) with wandb's own protobuf types: a
    7-byte header, then LevelDB-log chunks (4-byte checksum, 2-byte length, 1-byte type) in 32 KiB blocks."""
    from wandb.proto import wandb_internal_pb2

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    position, pending = 7, b""
    while position + 7 <= len(data):
        if block - position % block < 7:  # the block's tail is padding
            position += block - position % block
            continue
        length, kind = int.from_bytes(data[position + 4:position + 6], "little"), data[position + 6]
        pending += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


@pytest.fixture
def wandb_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every folder W&B writes under ``tmp_path``; no error reports to W&B's servers."""
    pytest.importorskip("wandb", reason="the wandb extra is not installed (pip install 'pytest-energy[wandb]')")
    folder = tmp_path / "wandb-home"
    for name in ("WANDB_DIR", "WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_ARTIFACT_DIR"):
        (folder / name.lower()).mkdir(parents=True)
        monkeypatch.setenv(name, str(folder / name.lower()))
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    return folder


@pytest.mark.parametrize("mode", ["offline", None])
def test_wandb_offline_run_folder_holds_the_records(run, pytester, monkeypatch, wandb_dir, mode):
    """With WANDB_MODE=offline, and without WANDB_MODE (pytest-energy's default: offline, no network)."""
    if mode:
        monkeypatch.setenv("WANDB_MODE", mode)
    else:
        monkeypatch.delenv("WANDB_MODE", raising=False)
    result = run("--energy-wandb", "energy-project")
    assert result.ret == 0, result.stdout.str()
    [folder] = (wandb_dir / "wandb_dir" / "wandb").glob("offline-run-*")
    [line] = [line for line in result.outlines if "W&B run" in line]
    assert f"saved offline in {folder}" in line
    [log] = folder.glob("run-*.wandb")
    records = list(_wandb_records(log))
    [started] = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert started.project == "energy-project" and started.job_type == "pytest-energy"
    summary = {item.key or "/".join(item.nested_key): json.loads(item.value_json)
               for r in records if r.WhichOneof("record_type") == "summary" for item in r.summary.update}
    for name, joules in JOULES.items():
        assert summary[f"{name.replace('::', '/')}/net_joules_per_unit"] == pytest.approx(joules, rel=0.1)
    assert summary["outcome"] == "passed" and summary["total/records"] == 2
    [table] = (folder / "files" / "media" / "table").glob("energy_records_*.table.json")
    rows = json.loads(table.read_text())
    column = rows["columns"].index
    by_test = {row[column("test")]: row for row in rows["data"]}
    assert sorted(by_test) == sorted(NAMES)
    for name, joules in JOULES.items():
        assert by_test[name][column("net_joules_per_unit")] == pytest.approx(joules, rel=0.1)
        assert by_test[name][column("verdict")] == "new"
    [artifact] = [r.artifact for r in records
                  if r.WhichOneof("record_type") == "artifact" and r.artifact.name == "pytest-energy-report"]
    assert artifact.type == "energy-report"
    assert sorted(entry.path for entry in artifact.manifest.contents) == ["out.json", "report.html"]


@pytest.mark.parametrize("mode, project, says", [
    ("nosuchmode", "energy-project", "check --energy-wandb (a project name, or entity/project), WANDB_MODE"),
    ("offline", "team/energy/extra", "'team/energy/extra' is not a W&B project name or entity/project"),
])
def test_a_wandb_run_that_cannot_start_costs_one_line(run, pytester, monkeypatch, wandb_dir, mode, project, says):
    monkeypatch.setenv("WANDB_MODE", mode)
    result = run("--energy-wandb", project)
    [line] = _tracker_lines(result)
    assert line.startswith("pytest-energy: could not send the W&B run (--energy-wandb): ") and says in line
    _others_written(result, pytester.path)


# -- Prometheus ------------------------------------------------------------------------------------------
@pytest.fixture
def parse():
    parser = pytest.importorskip("prometheus_client.parser",
                                 reason="prometheus-client is not installed (pip install 'pytest-energy[prometheus]')")

    def families(text: str) -> dict[str, Any]:
        return {family.name: family for family in parser.text_string_to_metric_families(text)}

    return families


@pytest.mark.parametrize("xdist", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_prometheus_file_holds_one_sample_per_record(run, pytester, parse, xdist):
    result = run("--energy-prometheus", "metrics/energy.prom", *xdist)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines([f"*Prometheus metrics: {pytester.path / 'metrics' / 'energy.prom'}"])
    families = parse((pytester.path / "metrics" / "energy.prom").read_text())
    net = families["pytest_energy_net_joules_per_unit"]
    assert net.type == "gauge" and sorted(s.labels["test"] for s in net.samples) == sorted(NAMES)
    for sample in net.samples:
        assert sample.value == pytest.approx(JOULES[sample.labels["test"]], rel=0.1)
        assert sample.labels["unit"] == "iteration" and sample.labels["device_kind"].startswith("rapl: ")
    for metric in ("gross_joules_per_unit", "co2_grams", "verdict"):
        assert sorted(s.labels["test"] for s in families[f"pytest_energy_{metric}"].samples) == sorted(NAMES)
    assert {(s.labels["verdict"], s.value) for s in families["pytest_energy_verdict"].samples} == {("new", 1.0)}
    assert [s.value for s in families["pytest_energy_records"].samples] == [2.0]
    assert [s.value for s in families["pytest_energy_gate_failed"].samples] == [0.0]
    assert not list(pytester.path.glob("metrics/.*"))  # written at once: no temporary file left


def test_prometheus_label_values_are_escaped(tmp_path, parse):
    from pytest_energy.report.trackers import prometheus

    name = 't.py::test_a[say "hi"\\n\nnext]'
    families = parse(prometheus.text(_report(name, "t.py::test_b")))
    tests = [s.labels["test"] for s in families["pytest_energy_net_joules_per_unit"].samples]
    assert sorted(tests) == sorted([name, "t.py::test_b"])


def test_an_unwritable_prometheus_path_costs_one_line(run, pytester, parse):
    (pytester.path / "blocker").write_text("a file, not a folder")
    result = run("--energy-prometheus", "blocker/energy.prom")
    [line] = _tracker_lines(result)
    assert line.startswith("pytest-energy: could not write the Prometheus metrics file (--energy-prometheus): ")
    assert "check that --energy-prometheus names a file in a folder this user can write" in line
    _others_written(result, pytester.path)


class _Gateway(http.server.BaseHTTPRequestHandler):
    """A Pushgateway's front: records each request's method, path and body, answers 200."""

    received: list[tuple[str, str, str, str | None]] = []

    def do_PUT(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8")
        self.received.append((self.command, self.path, body, self.headers.get("Authorization")))
        self.send_response(200)
        self.end_headers()

    do_POST = do_PUT

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[tuple[str, list[tuple[str, str, str, str | None]]]]:
    received: list[tuple[str, str, str, str | None]] = []
    handler = type("Gateway", (_Gateway,), {"received": received})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("login", ["", "push:s3cr%40t@"])
def test_prometheus_push_sends_the_metrics_to_the_gateway(run, pytester, parse, gateway, login):
    """A login in the URL goes as HTTP basic authentication (a gateway behind a proxy), never shown."""
    url, received = gateway
    result = run("--energy-prometheus-push", url.replace("://", f"://{login}"))
    assert result.ret == 0, result.stdout.str()
    document = json.loads((pytester.path / "out.json").read_text())
    runner = document["session"]["fingerprint"]["id"]
    [(method, path, body, authorization)] = received
    assert method == "PUT" and path == f"/metrics/job/pytest-energy/instance/{runner}"
    assert authorization == (f"Basic {base64.b64encode(b'push:s3cr@t').decode()}" if login else None)
    net = parse(body)["pytest_energy_net_joules_per_unit"]
    assert sorted(s.labels["test"] for s in net.samples) == sorted(NAMES)
    result.stdout.fnmatch_lines([f"*Prometheus metrics pushed to {url} (job pytest-energy, instance {runner})"])
    assert "s3cr" not in result.stdout.str() + (pytester.path / "out.json").read_text()


def test_an_unreachable_pushgateway_costs_one_line_and_not_the_file(run, pytester, parse):
    result = run("--energy-prometheus", "energy.prom", "--energy-prometheus-push", f"http://127.0.0.1:{_closed_port()}")
    [line] = _tracker_lines(result)
    assert line.startswith("pytest-energy: could not send the Pushgateway push (--energy-prometheus-push): ")
    assert "check --energy-prometheus-push" in line
    assert "pytest_energy_net_joules_per_unit" in parse((pytester.path / "energy.prom").read_text())
    _others_written(result, pytester.path)


# -- a tracker's library missing ------------------------------------------------------------------------
@pytest.mark.parametrize("option, value, module, extra", [
    ("--energy-mlflow", "sqlite:///m.db", "mlflow", "mlflow"),
    ("--energy-wandb", "energy-project", "wandb", "wandb"),
    ("--energy-prometheus", "energy.prom", "prometheus_client", "prometheus"),
    ("--energy-mlflow", "sqlite:///m.db", "alembic", "mlflow"),  # mlflow-skinny alone: no SQLite store
])
def test_a_missing_library_is_one_line_naming_the_extra(run, pytester, option, value, module, extra):
    if module == "alembic":
        pytest.importorskip("mlflow", reason="the mlflow extra is not installed")
    pytester.makeconftest(CONFTEST + f"\nimport sys\nsys.modules[{module!r}] = None  # not installed\n")
    result = run(option, value)
    [line] = _tracker_lines(result)
    assert module in line and f"pip install 'pytest-energy[{extra}]'" in line
    _others_written(result, pytester.path)


def test_the_trackers_are_imported_only_when_configured(run, pytester):
    """A run with the trackers off imports none of their libraries, nor the trackers' modules."""
    pytester.makeconftest(CONFTEST + """
import sys
def pytest_unconfigure(config):
    loaded = [m for m in ("mlflow", "wandb", "pytest_energy.report.trackers") if m in sys.modules]
    print("TRACKERS:", loaded)
""")
    result = run("-s")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*TRACKERS: []"])
