"""No secret leaves the process: a password-protected PostgreSQL history, reached through every form a
URL can give its password in (escaped, unescaped `/` and `@`, `?password=` in the query) and through
libpq's own (PGPASSWORD, a .pgpass file, a PGSERVICE), is never printed or stored. Each form is run
through `pytest --energy` (serially and with `-n 2`) and every command, and the password is looked for
in the terminal, the JSON, the HTML reports, the CSV, the commands' output and every column of every
row of the history's tables.

The server is the session's throwaway cluster (pytest_energy/testing/postgres.py), whose roles other than `postgres`
sign in only with their password: a run that appends proves the password was used."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from test_gate_integration import ARGS, CONFTEST, run_energy

from pytest_energy.commands.cli import main
from pytest_energy.core.config import hide_password, hidden_secrets

PASSWORD = "S3cret/P@ss:w0rd"
#: What a leak of it would look like: whole, escaped, or its parts on either side of "/" and "@".
LEAKS = (PASSWORD, quote(PASSWORD, safe=""), quote(PASSWORD), "S3cret", "ss:w0rd", "w0rd")

MEASURED = '''
def test_measured(energy, package):
    energy.run(package.spend, args=(1.0,), iterations=1)
'''


def _leaks(text: str) -> list[str]:
    return [leak for leak in LEAKS if leak in text]


# -- the rendering, form by form ------------------------------------------------------------------------
@pytest.mark.parametrize("url, shown, stored", [
    ("postgresql://energy:S3cret%2FP%40ss%3Aw0rd@db.example:5432/energy",
     "postgresql://energy:***@db.example:5432/energy", "postgresql://energy@db.example:5432/energy"),
    ("postgresql://energy:S3cret/P@ss:w0rd@db.example/energy",
     "postgresql://energy:***@db.example/energy", "postgresql://energy@db.example/energy"),
    ("postgresql://energy:S3cret/P@ss:w0rd@/energy?host=/run/pg",
     "postgresql://energy:***@/energy?host=%2Frun%2Fpg", "postgresql://energy@/energy?host=%2Frun%2Fpg"),
    ("postgresql+psycopg://energy@db.example/energy?password=S3cret/P@ss:w0rd&sslmode=require",
     "postgresql+psycopg://energy@db.example/energy?password=***&sslmode=require",
     "postgresql+psycopg://energy@db.example/energy?sslmode=require"),
    ("postgresql://energy@db.example/energy?sslpassword=S3cret/P@ss:w0rd",
     "postgresql://energy@db.example/energy?sslpassword=***", "postgresql://energy@db.example/energy"),
    ("postgresql://energy@db.example/energy", "postgresql://energy@db.example/energy",
     "postgresql://energy@db.example/energy"),
    ("postgresql:///?service=energy", "postgresql:///?service=energy", "postgresql:///?service=energy"),
    ("postgresql://energy:S3cret?P@ss:w0rd@db.example/energy",  # a "?" before the last "@" is the password's
     "postgresql://energy:***@db.example/energy", "postgresql://energy@db.example/energy"),
    # Unparseable (a port that is no number), or a password whose "?" and "@" spill past make_url's
    # reading: everything between // and the last @ is masked, and the secret parameters' values.
    ("postgresql://energy:S3cret/P@ss:w0rd@db.example:port/energy", "postgresql://***@db.example:port/energy",
     "postgresql://***@db.example:port/energy"),
    ("postgresql://energy:S3cret/P@ss?w0rd@db.example/energy", "postgresql://***@db.example/energy",
     "postgresql://***@db.example/energy"),
    ("postgresql://energy@db.example:port/energy?password=S3cret/P@ss:w0rd",
     "postgresql://***@db.example:port/energy?password=***", "postgresql://***@db.example:port/energy?password=***"),
    ("reports/energy-history.sqlite", "reports/energy-history.sqlite", "reports/energy-history.sqlite"),
])
def test_a_history_location_is_shown_and_stored_without_its_password(url: str, shown: str, stored: str) -> None:
    assert hide_password(url) == shown
    assert hide_password(url, drop=True) == stored
    assert hidden_secrets({"history": url, "rounds": 5}, drop=True) == {"history": stored, "rounds": 5}


def test_the_conservative_mask_never_leaves_a_part_of_the_password() -> None:
    """Where make_url cannot be trusted, nothing of the password survives in any of these forms."""
    for url in ("postgresql://energy@db.example:port/energy?host=/x&password=S3cret/P@ss:w0rd&sslmode=require",
                "postgresql://energy:S3cret/P@ss?w0rd@db.example:port/energy",
                "postgresql://e:S3cret/P@ss:w0rd@db.example/energy?application_name=a@b"):
        for drop in (False, True):
            assert _leaks(hide_password(url, drop=drop)) == [], (url, hide_password(url, drop=drop))


# -- every output of a run and of the commands -----------------------------------------------------------
FORMS = ("escaped", "unescaped", "query", "pgpassword", "pgpass", "pgservice")


def _reach(form: str, cluster: Any, folder: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """A new password-protected database, and the URL that reaches it in ``form``: the password in the
    URL, or only where libpq looks for it itself (psycopg is libpq), the others unset."""
    database = cluster.secured_database(PASSWORD, prefix=form)  # its role has its name
    socket = cluster.folder
    for name in ("PGPASSWORD", "PGSERVICEFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGPASSFILE", str(folder / "no-pgpass"))  # never the user's own ~/.pgpass
    given = {"escaped": f"{database}:{quote(PASSWORD, safe='')}@/{database}?host={socket}",
             "unescaped": f"{database}:{PASSWORD}@/{database}?host={socket}",
             "query": f"{database}@/{database}?host={socket}&password={PASSWORD}"}
    if form in given:
        return f"postgresql://{given[form]}", database
    if form == "pgpassword":
        monkeypatch.setenv("PGPASSWORD", PASSWORD)
    elif form == "pgpass":
        pgpass = folder / "pgpass"
        pgpass.write_text(f"*:*:*:{database}:{PASSWORD.replace(':', chr(92) + ':')}\n")
        pgpass.chmod(0o600)
        monkeypatch.setenv("PGPASSFILE", str(pgpass))
    else:
        service = folder / "pg_service.conf"
        service.write_text(f"[energy]\nhost={socket}\ndbname={database}\nuser={database}\npassword={PASSWORD}\n")
        monkeypatch.setenv("PGSERVICEFILE", str(service))
        return "postgresql:///?service=energy", database
    return f"postgresql://{database}@/{database}?host={socket}", database


def _rows(cluster: Any, database: str) -> str:
    """Every column of every row of every table of one database, read as the superuser."""
    import psycopg
    from psycopg import sql

    found = []
    with psycopg.connect(host=str(cluster.folder), user="postgres", dbname=database) as admin:
        tables = [row[0] for row in admin.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        assert {"meta", "runs", "records", "verdicts"} <= set(tables)
        for table in tables:
            found += [repr(row) for row in admin.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))]
    return "\n".join(found)


@pytest.fixture(params=["serial", "xdist"])
def workers(request: pytest.FixtureRequest) -> list[str]:
    return ["-n", "2"] if request.param == "xdist" else []


@pytest.mark.parametrize("form", FORMS)
def test_no_output_and_no_row_holds_the_password(form: str, workers: list[str], postgres: Any,
                                                 pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    url, database = _reach(form, postgres, pytester.path, monkeypatch)
    for name in [n for n in os.environ if n.startswith("PYTEST_ENERGY")]:
        monkeypatch.delenv(name)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_secret=MEASURED)
    result = run_energy(pytester, *ARGS, *workers, "--energy-history", url, "--energy-report", "report.html",
                                           "--energy-csv", "emissions.csv", "--junitxml", "junit.xml")
    terminal = result.stdout.str() + result.stderr.str()
    capsys.readouterr()  # pytester's own "running: ..." line, which holds the command line given
    assert result.ret == 0, terminal
    assert f"appended to history {hide_password(url)}" in terminal, terminal  # so the password was used
    document = json.loads((pytester.path / "out.json").read_text())
    assert document["session"]["settings"]["history"] == hide_password(url, drop=True)
    # The commands, in this process: runs, a test's history, the nightly report, import, baselines from
    # the history, doctor.
    nightly = pytester.path / "nightly.html"
    monkeypatch.chdir(pytester.path)
    codes = [main(["runs", "--history", url]),
             main(["history", "test_secret.py::test_measured", "--history", url]),
             main(["report", "--history", url, "--out", str(nightly)]),
             main(["import", "out.json", "--history", url]),
             main(["baselines", "update", "--from-history", "--last", "1", "--history", url])]
    monkeypatch.setenv("PYTEST_ENERGY_HISTORY", url)
    codes += [main(["doctor", "--idle-seconds", "0.05"]), main(["doctor", "--json", "--idle-seconds", "0.05"])]
    commands = capsys.readouterr()
    assert codes == [0] * 7, commands
    assert f"written from history {hide_password(url)}" in commands.out
    assert list((pytester.path / "baselines").rglob("*.json"))
    assert f"run {document['session']['run_id']} is in history {hide_password(url)} already" in commands.out
    assert f'"history": "{hide_password(url)}"' in commands.out  # doctor --json shows the store, hidden
    texts = {"terminal": terminal, "commands": commands.out + commands.err, "nightly": nightly.read_text(),
             "rows": _rows(postgres, database)}
    texts |= {name: (pytester.path / path).read_text() for name, path in
              (("json", "out.json"), ("html", "report.html"), ("csv", "emissions.csv"), ("junit", "junit.xml"))}
    texts |= {str(path): path.read_text() for path in (pytester.path / "baselines").rglob("*.json")}
    leaked = {name: [line for line in text.splitlines() if _leaks(line)] for name, text in texts.items()}
    assert leaked == {name: [] for name in texts}


def test_a_url_that_cannot_be_parsed_is_never_printed_in_the_clear(workers: list[str], pytester: pytest.Pytester,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("PYTEST_ENERGY")]:
        monkeypatch.delenv(name)
    url = f"postgresql://energy:{PASSWORD}@db.example:port/energy"  # a port that is no number
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_secret=MEASURED)
    result = run_energy(pytester, *ARGS, *workers, "--energy-history", url, "--energy-report", "report.html")
    terminal = result.stdout.str() + result.stderr.str()
    assert result.ret == 0, terminal
    assert ("pytest-energy: history postgresql://***@db.example:port/energy is not a database URL; give "
            "postgresql://user@host:5432/db or a file path for SQLite (run ") in terminal
    texts = {"terminal": terminal, "json": (pytester.path / "out.json").read_text(),
             "html": (pytester.path / "report.html").read_text()}
    assert {name: _leaks(text) for name, text in texts.items()} == {name: [] for name in texts}
