"""Runs from ``--energy-json`` files (CI artifacts) into a history store: ``pytest-energy import``; one run
read back for a report of it (:func:`read_run`).

A team without a database server builds its nightly history this way: each job uploads its JSON, and
the nightly job imports them all into one store. A document of schema 1 (no gate section), 2 or 3 (a
record's ``criteria`` were its ``budget`` before) is read; any other version, anything that is not such a
document, and one whose fields are not of their types (checked before anything is written) is refused
in one line naming the file, and the other files are imported. A run the store already holds (by run
id) is not stored again, so importing the same files twice, or an artifact of a run that also appended
itself, stores each run once. A history URL a file's settings hold is stored without its password.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..core.config import hidden_secrets
from ..core.record import Record, RunInfo, json_kind, misfit
from ..store.history import HistoryError

if TYPE_CHECKING:
    from ..store.history import History
    from ..judge.verdict import Judgement

#: The ``--energy-json`` schema versions this reads (see record.SCHEMA_VERSION and docs/record.md).
READABLE = (1, 2, 3, 4)
#: Gate outcomes of the JSON that mean the gate failed the run.
_FAILED = ("failed", "incomplete")


class ArtifactError(ValueError):
    """A file that cannot be read as a run; the message is one line naming it and why (the caller says
    what it then leaves undone: "not imported")."""


@dataclass
class Run:
    """One run read back from its ``--energy-json`` document."""

    path: Path
    info: RunInfo
    records: list[Record]
    judgement: Judgement | None  # None for a schema-1 document (it has no gate section)
    headline: dict[str, Any] = field(default_factory=dict)  # the run's headline as the file holds it ({} before)


@dataclass
class Imported:
    """What :func:`import_files` did, one line per file."""

    lines: list[str] = field(default_factory=list)
    imported: list[str] = field(default_factory=list)  # run ids
    already: list[str] = field(default_factory=list)
    refused: list[Path] = field(default_factory=list)


def _judgement(gate: Any, session: dict[str, Any]) -> Judgement:
    from ..judge.verdict import Judgement, Verdict

    if not isinstance(gate, dict):
        raise TypeError("its gate section is not an object")
    known = {f.name for f in dataclasses.fields(Verdict)}
    return Judgement(
        verdicts=[Verdict(**{k: v for k, v in data.items() if k in known}) for data in gate.get("verdicts", [])],
        baseline_set=gate.get("baseline_set") or "default",
        fingerprint_id=gate.get("fingerprint_id") or str(session.get("fingerprint", {}).get("id") or ""),
        new=list(gate.get("new", [])),
        errors=list(gate.get("errors", [])),
        gate_failed=gate.get("outcome") in _FAILED,
        summary=list(gate.get("summary", [])),
        incomplete=list(gate.get("incomplete", [])),
    )


def _document(path: Path) -> dict[str, Any]:
    """The JSON document of one file, of a schema version this reads; :class:`ArtifactError` otherwise."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ArtifactError(f"pytest-energy: {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise ArtifactError(f"pytest-energy: {path} is not JSON ({error})") from None
    if not isinstance(document, dict) or "schema_version" not in document or not isinstance(
            document.get("session"), dict):
        raise ArtifactError(f"pytest-energy: {path} is not an --energy-json document (no schema_version and "
                            "session)")
    version = document["schema_version"]
    if type(version) is not int:  # true == 1 in Python, never in a document
        raise ArtifactError(f"pytest-energy: {path}: its schema_version is {json.dumps(version)[:40]}, not a version "
                            "number")
    if version not in READABLE:
        raise ArtifactError(f"pytest-energy: {path} has --energy-json schema version {version}; this pytest-energy "
                            f"reads {', '.join(map(str, READABLE[:-1]))} and {READABLE[-1]} (a newer file needs a newer "
                            "pytest-energy)")
    run_id = document["session"].get("run_id")
    if not isinstance(run_id, str) or not run_id.strip():  # checked first: it is what the store is asked
        what = "empty" if isinstance(run_id, str) else "missing" if run_id is None else json_kind(run_id)
        raise ArtifactError(f"pytest-energy: {path}: its session's run_id is {what}, expected the run's id (text)")
    return document


def _run(path: Path, document: dict[str, Any]) -> Run:
    version = document["schema_version"]
    try:
        session = document["session"]
        info = RunInfo.from_dict(session)
        records = [Record.from_dict(data) for data in document.get("records") or []]
        judgement = _judgement(document["gate"], session) if "gate" in document else None
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ArtifactError(f"pytest-energy: {path}: a schema-{version} document in a shape this pytest-energy "
                            f"cannot read ({type(error).__name__}: {error})") from None
    wrong = _misshapen(info, records, judgement)
    if wrong:
        raise ArtifactError(f"pytest-energy: {path}: a schema-{version} document in a shape this pytest-energy "
                            f"cannot read ({wrong})")
    if not records:
        raise ArtifactError(f"pytest-energy: {path}: run {info.run_id} measured nothing")
    # A file written before passwords were left out of records may hold one in its history URL.
    info.settings = hidden_secrets(info.settings, drop=True)
    headline = document["gate"].get("headline") if judgement is not None else None
    return Run(Path(path), info, records, judgement, headline if isinstance(headline, dict) else {})


def read_run(path: Path) -> Run:
    """The run of one ``--energy-json`` file (``pytest-energy report --from-json``); :class:`ArtifactError`
    (one line) where it cannot be read as one."""
    return _run(Path(path), _document(path))


def _misshapen(info: RunInfo, records: list[Record], judgement: Judgement | None) -> str | None:
    """What keeps a run read from a file out of a history, checked before anything is written: a
    field not of its type, or what a run holds once (a record's name; a verdict's name, metric and
    baseline set) given twice."""
    found = misfit(info, "session") or next(
        (m for i, record in enumerate(records) if (m := misfit(record, f"records[{i}]"))), None)
    if found is None and judgement is not None:
        found = misfit(judgement, "gate")
    if found is None and not isinstance(info.fingerprint.get("id"), (str, type(None))):
        found = f"session.fingerprint['id'] is {json_kind(info.fingerprint['id'])}, expected str"
    if found is not None:
        return found
    twice = [name for name, count in Counter(r.name for r in records).items() if count > 1]
    if twice:
        return f"the record name {twice[0]!r} is given twice"
    keys = Counter((v.name, v.metric, v.baseline_set) for v in judgement.verdicts) if judgement else Counter()
    twice_judged = [key for key, count in keys.items() if count > 1]
    if twice_judged:
        name, metric, baseline_set = twice_judged[0]
        return f"the {metric} verdict on {name!r} against the set {baseline_set!r} is given twice"
    return None


def import_files(history: History, paths: Sequence[Path]) -> Imported:
    """Append the run of each file to ``history``, skipping runs it holds already; a file that cannot
    be imported (its rows refused by the store too) is one line in ``lines`` and in ``refused``, and the
    others are imported. A store that cannot be used at all raises
    :class:`pytest_energy.store.history.HistoryError` (one line)."""
    result = Imported()
    documents: list[tuple[Path, dict[str, Any]]] = []
    for path in paths:
        try:
            documents.append((Path(path), _document(path)))
        except ArtifactError as error:
            result.lines.append(f"{error}; not imported")
            result.refused.append(Path(path))
    held = history.stored(str(document["session"].get("run_id")) for _, document in documents)
    for path, document in documents:
        run_id = str(document["session"].get("run_id"))
        if run_id in held:  # before its records are rebuilt: a nightly import of every artifact stays quick
            result.already.append(run_id)
            result.lines.append(f"pytest-energy: {path}: run {run_id} is in history {history.where} already; "
                                "not stored again")
            continue
        try:
            run = _run(path, document)
        except ArtifactError as error:
            result.lines.append(f"{error}; not imported")
            result.refused.append(path)
            continue
        try:
            history.append(run.info, run.records, run.judgement)
        except HistoryError as error:  # this run's rows refused (the store rolled them back): the rest go on
            result.lines.append(f"{error}; {path} not imported")
            result.refused.append(path)
            continue
        held.add(run_id)
        result.imported.append(run_id)
        result.lines.append(f"pytest-energy: {path}: run {run_id} imported ({len(run.records)} records)")
    result.lines.append(f"pytest-energy: {len(result.imported)} runs imported into {history.where}, "
                        f"{len(result.already)} held already, {len(result.refused)} files refused")
    return result
