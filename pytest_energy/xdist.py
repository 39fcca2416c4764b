"""The xdist hand-over: workers measure, the controller merges their records and writes.

Each worker sends what it has not sent yet (its new records and notes, and the session's facts) with
every test's teardown report and at its session's end, so a worker that crashes loses only what the
test it was running measured; the controller names that worker and test, and the gate reads as
incomplete.

Where the workers share the machine, a device's counter counts every worker's work inside each window.
``--energy-gpus-per-worker N`` gives each worker N GPUs of its own: the controller writes each block into
its worker's gateway spec (``popen//env:CUDA_VISIBLE_DEVICES=2``), so execnet sets it before the worker
imports anything, and a worker restarted after a crash gets the same block. A device still shared (a GPU
without the option, a RAPL package, DRAM) is marked on its channel (:func:`share`): its records say so
and its energy does not gate.
"""

from __future__ import annotations

from typing import Any, Iterable, Protocol, Sequence

import pytest

from .context import Pending
from .core.config import Settings, SettingError, named
from .core.record import Record

#: The session's facts a worker sends with its records: they were measured with them.
FACTS = ("fingerprint", "idle_watts", "reference_joules")
#: What CUDA reads when it initialises; NVML ignores it (the NVML source maps it to NVML's GPUs).
CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"


def gpu_blocks(visible: Sequence[str], per_worker: int) -> list[str]:
    """The workers' ``CUDA_VISIBLE_DEVICES`` values: consecutive blocks of ``per_worker`` of the ``visible``
    GPUs, the first for ``gw0`` (GPUs left over, too few for a block, stay idle)."""
    return [",".join(visible[start:start + per_worker])
            for start in range(0, len(visible) - per_worker + 1, per_worker)]


def worker_blocks(settings: Settings) -> list[str]:
    """The GPU blocks ``--energy-gpus-per-worker`` makes of the GPUs CUDA shows this process (UUIDs where
    ``CUDA_VISIBLE_DEVICES`` names UUIDs); :class:`SettingError` (one line) where they cannot be listed
    or are fewer than one block."""
    from .measure.sources import SourceUnavailable
    from .measure.sources.nvml import visible_gpus

    per_worker = settings.gpus_per_worker
    try:
        visible = visible_gpus()
    except SourceUnavailable as error:
        raise SettingError(f"pytest-energy: {named(settings, 'gpus_per_worker')} = {per_worker}, but the GPUs could "
                           f"not be listed ({error})") from None
    blocks = gpu_blocks(visible, per_worker)
    if not blocks:
        raise SettingError(f"pytest-energy: {named(settings, 'gpus_per_worker')} = {per_worker}, but CUDA shows "
                           f"this process {len(visible)} GPU(s): give {len(visible)} or fewer per worker")
    return blocks


def _specs(tx: Iterable[str]) -> list[str]:
    """xdist's gateway specs one per worker ("2*popen" is two), as xdist's node manager expands them."""
    specs: list[str] = []
    for spec in tx:
        count, star, rest = spec.partition("*")
        specs += [rest] * int(count) if star and count.isdigit() else [spec]
    return specs


def with_gpus(tx: Iterable[str], blocks: Sequence[str], settings: Settings) -> list[str]:
    """The gateway specs, each worker's with its GPU block in its environment; :class:`SettingError`
    naming the counts where there are more workers than blocks."""
    specs = _specs(tx)
    if len(specs) > len(blocks):
        raise SettingError(
            f"pytest-energy: {len(specs)} xdist workers but {len(blocks)} block(s) of {settings.gpus_per_worker} "
            f"GPU(s) ({named(settings, 'gpus_per_worker')}): run -n {len(blocks)} or fewer, or -n auto")
    return [f"{spec}//env:{CUDA_VISIBLE_DEVICES}={block}" for spec, block in zip(specs, blocks, strict=False)]


def unused_gpus_option(settings: Settings, *, distributing: bool, worker: bool) -> list[str]:
    """The note for ``--energy-gpus-per-worker`` given to a run without xdist workers, where it changes
    nothing (this process measures every GPU it sees); none elsewhere."""
    if settings.gpus_per_worker is None or distributing or worker:
        return []
    return [f"{named(settings, 'gpus_per_worker')} = {settings.gpus_per_worker} changes nothing in a run without "
            "xdist workers: this run measured every GPU it sees (give -n N to split them)"]


def share(channels: Iterable[Any], workers: int, own_gpus: bool) -> None:
    """Mark the channels whose device the run's other ``workers`` draw on in the same windows: every
    counted or sampled device where several workers run (a RAPL package and DRAM always), except GPUs
    the workers were given their own of (``own_gpus``). A modelled device is this process's own CPU time
    and memory, so it is never shared."""
    if workers < 2:
        return
    for channel in channels:
        if channel.method != "modelled" and not (channel.kind == "gpu" and own_gpus):
            channel.shared_with = workers


class Outbox:
    """Worker side: how much of the records and notes has gone to the controller."""

    def __init__(self) -> None:
        self._sent = {"records": 0, "notes": 0, "facts": 0, "collection": 0}

    def payload(self, taken: Sequence[Pending], notes: list[str], facts: dict[str, Any],
                collection: dict[str, Any] | None = None) -> dict[str, Any]:
        """What has not been sent yet (plain data): new records and notes, ``facts`` (see :data:`FACTS`)
        once, and again with every batch of records, and what the worker collected (``collection``)
        once, in its first payload after collecting. Empty: nothing to send."""
        payload: dict[str, Any] = {}
        if collection and any(collection.values()) and not self._sent["collection"]:
            payload["collection"] = collection
        records = [t.record.to_dict() for t in taken[self._sent["records"]:]]
        if records:
            payload["records"] = records
        if notes[self._sent["notes"]:]:
            payload["notes"] = notes[self._sent["notes"]:]
        if facts["fingerprint"] and (records or not self._sent["facts"]):  # records travel with their facts
            payload.update(facts)
        self._sent = {"records": len(taken), "notes": len(notes), "facts": int(bool(facts["fingerprint"])),
                      "collection": int(self._sent["collection"] or "collection" in payload)}
        return payload


class Inbox:
    """Controller side: the workers' records, and the workers that crashed."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.crashed: dict[str, dict[str, str]] = {}  # crashed worker -> its error and test
        self._facts_measured = False  # the facts taken came with a worker's records

    def merge(self, payload: dict[str, Any], notes: list[str], have_facts: bool) -> dict[str, Any] | None:
        """Take one worker's records, and its notes into ``notes``; return the facts the session
        should take from it (None: keep its own; ``have_facts``: it has some already)."""
        self.records += [Record.from_dict(r) for r in payload.get("records", [])]
        notes += [n for n in payload.get("notes", []) if n not in notes]
        # The session's facts come from a worker that measured (every worker starts its meter, and a
        # worker handed no test can report first): its records were judged with that reference.
        measured = bool(payload.get("records"))
        if payload.get("fingerprint") and (not have_facts or (measured and not self._facts_measured)):
            self._facts_measured = measured
            return {k: payload.get(k, {}) for k in FACTS}
        return None

    def down(self, worker: str, error: Any) -> None:
        """A worker ended; a crash (``error``) is kept."""
        if error is not None:
            self.crashed[worker] = {"error": str(error).strip() or "no reason given", "test": ""}

    def crashed_in(self, worker: str, nodeid: str) -> None:
        """xdist names the test a crashed worker was running (it comes after :meth:`down`)."""
        self.crashed.setdefault(worker, {"error": "no reason given", "test": ""})["test"] = nodeid

    def lost(self) -> list[str]:
        """One line per crashed worker: which test's records were lost, why the gate cannot judge it."""
        lines = []
        for worker, crash in sorted(self.crashed.items()):
            lost = (f"while running {crash['test']}: the records that test took are lost and the gate cannot "
                    "judge it" if crash["test"] else "outside a test: what it measured after its last test is "
                    "lost and the gate cannot judge it")
            lines.append(f"pytest-energy: xdist worker {worker} crashed ({crash['error']}) {lost} (the worker's "
                         "finished tests had sent theirs)")
        return lines


class Controller(Protocol):
    """What :class:`XdistHooks` needs of the session."""

    inbox: Inbox

    def merge_worker(self, payload: dict[str, Any]) -> None: ...


class XdistHooks:
    """Registered on the xdist controller only: workers measure, the controller merges and writes."""

    def __init__(self, session: Controller) -> None:
        self.session = session

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        payload = report.__dict__.pop("energy_payload", None)  # taken off: other plugins never see it
        if payload:
            self.session.merge_worker(payload)

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        payload = getattr(node, "workeroutput", {}).get("energy")
        if payload:  # a crashed worker's last records, when it sent any
            self.session.merge_worker(payload)
        self.session.inbox.down(node.gateway.id, error)

    def pytest_handlecrashitem(self, crashitem: str, report: pytest.TestReport, sched: Any) -> None:
        self.session.inbox.crashed_in(report.node.gateway.id, crashitem)  # type: ignore[attr-defined]
