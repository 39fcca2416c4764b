"""Records: what one measured test (or case) produced, and the JSON form they are stored in.

Every number carries its method (``counter`` / ``sampled`` / ``modelled``) and an uncertainty.
Words: a *window* is one measured span of wall time; a *round* is one window holding one or more
*iterations* of the measured function; *gross* joules are as read, *net* joules are gross minus the
device's idle power times the window length.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .facts import CaseFacts, ModelFacts, case_from_dict, from_old_extra, model_from_dict
from .figures import case_figures, wh_per_1000
from .units import JOULES_PER

#: Version of the ``--energy-json`` document. 2: the gate's section, and ``per_1000_iterations_gross_wh``
#: (was ``per_1000_iterations_wh``, which held net energy while every other per-1,000 figure is gross).
#: 3: a record's ``criteria`` (was ``budget``, which also held verdict thresholds and the gate flag).
#: 4: a record's ``model``, ``case`` and ``notes`` (typed: :mod:`pytest_energy.core.facts`) and its case's
#: derived ``figures``, which schema 3 and older kept under string keys of ``extra``.
SCHEMA_VERSION = 4

METHODS = ("counter", "sampled", "modelled")
#: A record's test outcome: pytest's, with xfail told apart ("error": its set-up or teardown failed).
OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")


@dataclass
class Component:
    """Energy of one device (a GPU, a RAPL domain, the modelled CPU or RAM) summed over a record's rounds."""

    device: str  # e.g. "gpu:0", "cpu:package-0", "dram:0", "cpu", "ram"
    kind: str  # "gpu" | "cpu" | "dram" | "ram"
    method: str  # one of METHODS
    gross_joules: float
    net_joules: float
    idle_watts: float
    window_seconds: float
    ticks: int  # counter updates seen inside the windows (0 for continuous sources)
    uncertainty_joules: float  # systematic: quantisation, edge correction, or model error
    valid: bool = True
    note: str = ""
    # GPUs: {"start", "end": {temperature_c, sm_clock_mhz, power_limit_watts, throttle_reasons},
    # "throttled_windows", "throttling", "cooldown"} (see pytest_energy.measure.conditions); {} elsewhere
    conditions: dict[str, Any] = field(default_factory=dict)
    # xdist workers whose windows this device's counter also counts (a GPU several workers use, a RAPL
    # package, DRAM); 0 where it is this process's own. A shared device's energy never gates.
    shared_with: int = 0


@dataclass
class Round:
    """One window: how many iterations it held, how long it took, and its joules per device."""

    iterations: int
    seconds: float
    gross_joules: float
    net_joules: float
    valid: bool = True
    by_device: dict[str, float] = field(default_factory=dict)  # net joules per device

    @property
    def net_per_iteration(self) -> float:
        return self.net_joules / self.iterations


@dataclass
class Carbon:
    """How grams of CO2eq were obtained from kWh."""

    intensity_g_per_kwh: float
    source: str  # e.g. "codecarbon global_energy_mix.json: FRA (2022)", "explicit", "world average"
    pue: float
    country_iso_code: str | None = None

    def grams(self, joules: float) -> float:
        """gCO2eq for energy drawn at the device: facility energy is device energy x PUE."""
        return joules / JOULES_PER["kwh"] * self.pue * self.intensity_g_per_kwh


@dataclass
class Record:
    """One measured test, or one labelled measurement inside a test.

    ``per_iteration_*`` are means over the valid rounds; ``total_*`` are sums over all valid rounds and
    the measured warm-up and drain windows (``warmup_round``, ``drain_round``) where they are valid, so
    they hold all the energy measured. ``co2_grams`` is computed from the total gross energy times PUE (what the grid
    supplied). Build one with :meth:`from_rounds`, which derives every such number from the rounds and
    components (the components hold the rounds only: they are per-iteration energy's devices).
    """

    name: str  # node id, plus "::label" for labelled measurements
    nodeid: str
    form: str  # "call" (energy(fn)) | "block" (with energy.measure()) | "case" | "test" (--energy-top)
    rounds: list[Round]
    warmup_iterations: int
    components: list[Component]
    per_iteration_gross_joules: float
    per_iteration_net_joules: float
    per_iteration_uncertainty_joules: float
    total_gross_joules: float
    total_net_joules: float
    duration_seconds: float  # wall time of the measured windows
    co2_grams: float
    carbon: Carbon
    fingerprint: dict[str, Any]
    timestamp: str  # ISO 8601, UTC
    git_commit: str | None = None
    label: str = ""
    unit: str = "iteration"  # what one iteration is: "iteration", "inference", "step", ...
    iterations_per_call: int = 1  # iterations one call of the measured function counts as (a case's batch)
    # The warm-up's own window where it was measured (a block whose steps were marked: a fine-tune's first
    # steps): in the totals and the CO2, never in a per-iteration figure or a verdict. None elsewhere.
    warmup_round: Round | None = None
    # The window after the rounds where a block closed them before it ended (a served batch draining):
    # like the warm-up's, in the totals and the CO2 only. None elsewhere.
    drain_round: Round | None = None
    # Filled by later stages or by cases; kept here so a record is the single thing that flows on.
    quality: dict[str, dict[str, Any]] = field(default_factory=dict)  # metric -> {value, computed_by, ...}
    proxies: dict[str, float] = field(default_factory=dict)  # flops, parameters, tokens_in, tokens_out, ...
    normalised: dict[str, float] = field(default_factory=dict)  # energy normalised by the reference workload
    # Device -> the session's reference-workload joules per iteration, for this record's devices: a
    # verdict normalises the devices it judges by their own reference, not by every device's.
    reference_joules: dict[str, float] = field(default_factory=dict)
    timeline: list[tuple[float, float]] = field(default_factory=list)  # (seconds, watts) where sampled
    # What the record is judged by: the marker's verdict "threshold" / "thresholds" and "gate" flag, the
    # energy budgets checked ("energy": each with whether it was met) and a case's "quality" budget.
    criteria: dict[str, Any] = field(default_factory=dict)
    outcome: str = ""  # the test's outcome: see OUTCOMES ("" where the test never reported one)
    model: ModelFacts | None = None  # the model the measured code ran, where it names one
    case: CaseFacts | None = None  # what a case ran (form "case"); None for any other measurement
    notes: list[str] = field(default_factory=list)  # what the reader must know of the figures (an invalid window)
    extra: dict[str, Any] = field(default_factory=dict)  # free-form, the user's: pytest-energy never reads it

    @classmethod
    def from_rounds(cls, rounds: list[Round], components: list[Component], *, carbon: Carbon,
                    reference_joules: dict[str, float] | None = None, warmup_round: Round | None = None,
                    drain_round: Round | None = None, iterations_per_call: int = 1, **facts: Any) -> Record:
        """A record of these rounds and components, its derived numbers computed here and nowhere else:
        per-iteration means and uncertainty, totals, duration, CO2, and energy normalised by the
        session's reference workload (``reference_joules``: device -> joules per iteration; the
        record keeps its own devices' entries); a measured ``warmup_round`` or ``drain_round`` counts in the
        totals only.
        One measured call counts as ``iterations_per_call`` iterations (a case's batch of inferences):
        the rounds and warm-up are counted in calls, the record in iterations. ``facts`` are the other
        fields (name, nodeid, form, fingerprint, timestamp, model, case, notes, ...)."""
        if iterations_per_call != 1:
            def counted(measured: Round) -> Round:
                return dataclasses.replace(measured, iterations=measured.iterations * iterations_per_call)

            rounds = [counted(r) for r in rounds]
            warmup_round = counted(warmup_round) if warmup_round is not None else None
            drain_round = counted(drain_round) if drain_round is not None else None
            facts["warmup_iterations"] = facts.get("warmup_iterations", 0) * iterations_per_call
        own = {c.device: joules for c in components
               if (joules := (reference_joules or {}).get(c.device, 0.0)) > 0}
        return cls(rounds=rounds, components=components, carbon=carbon, reference_joules=own,
                   warmup_round=warmup_round, drain_round=drain_round, iterations_per_call=iterations_per_call,
                   **_derived(rounds, components, carbon, own, warmup_round, drain_round), **facts)

    @property
    def judgeable(self) -> bool:
        """Only a passed test's record may be judged and become a baseline: a test that skipped,
        xfailed, xpassed, failed or errored after measuring is recorded with its outcome, not judged."""
        return self.outcome == "passed"

    @property
    def methods(self) -> list[str]:
        return sorted({c.method for c in self.components})

    @property
    def judged_devices(self) -> list[str]:
        """The devices an energy verdict judges (see :func:`judged_devices`)."""
        return judged_devices(self.components)

    @property
    def iterations(self) -> int:
        return sum(r.iterations for r in self.rounds if r.valid)

    @property
    def valid(self) -> bool:
        return any(r.valid for r in self.rounds)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["methods"] = self.methods
        data["iterations"] = self.iterations
        # Gross, as budgets per 1,000, the cases' wh_per_1000_inferences and every report give it.
        data["per_1000_iterations_gross_wh"] = wh_per_1000(self.per_iteration_gross_joules)
        data["figures"] = case_figures(self)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        """Rebuild a record from :meth:`to_dict` output (derived keys are ignored); a document of
        schema 2 or older, whose ``criteria`` were called ``budget``, reads as well, and one of schema 3
        or older, which kept the model, the case's facts and the notes in ``extra``, has them read onto
        :attr:`model`, :attr:`case` and :attr:`notes` (``extra`` keeps only keys no writer of
        pytest-energy used)."""
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        if "criteria" not in data and isinstance(data.get("budget"), dict):
            kwargs["criteria"] = data["budget"]
        if "notes" not in data and isinstance(data.get("extra"), dict):  # schema 3 or older
            kwargs["model"], kwargs["case"], kwargs["notes"], kwargs["extra"] = from_old_extra(data["extra"])
        else:
            kwargs["model"], kwargs["case"] = model_from_dict(data.get("model")), case_from_dict(data.get("case"))
        kwargs["rounds"] = [Round(**r) for r in data["rounds"]]
        for window in ("warmup_round", "drain_round"):
            if data.get(window) is not None:
                kwargs[window] = Round(**data[window])
        kwargs["components"] = [Component(**c) for c in data["components"]]
        kwargs["carbon"] = Carbon(**data["carbon"])
        kwargs["timeline"] = [tuple(p) for p in data.get("timeline", [])]
        return cls(**kwargs)


def judged_devices(components: list[Component]) -> list[str]:
    """The devices an energy verdict judges: the measured ones (counter or sampled) where there are
    any, else the modelled ones; a modelled estimate never blurs a measured figure."""
    measured = sorted(c.device for c in components if c.method != "modelled")
    return measured or sorted(c.device for c in components)


def _derived(rounds: list[Round], components: list[Component], carbon: Carbon,
             reference_joules: dict[str, float], warmup_round: Round | None = None,
             drain_round: Round | None = None) -> dict[str, Any]:
    """A record's fields derived from its rounds, components, carbon, own reference joules and measured
    warm-up and drain windows (in the totals, duration and CO2 only)."""
    gross, net, spread = per_iteration_stats(rounds)
    valid = [r for r in rounds if r.valid]
    outside = [w for w in (warmup_round, drain_round) if w is not None]
    spent = valid + [w for w in outside if w.valid]
    iterations = sum(r.iterations for r in valid)
    systematic = math.sqrt(sum(c.uncertainty_joules**2 for c in components))
    systematic_per_iteration = systematic / iterations if iterations else math.nan
    total_gross = sum(r.gross_joules for r in spent)
    judged_names = set(judged_devices(components))
    judged = [c for c in components if c.device in judged_names]
    normalised = {}
    if iterations and judged and all(c.device in reference_joules for c in judged):
        # The devices a verdict judges, over their own reference joules: as the gate normalises.
        reference = sum(reference_joules[c.device] for c in judged)
        normalised = {
            "per_iteration_gross": sum(c.gross_joules for c in judged) / iterations / reference,
            "per_iteration_net": sum(c.net_joules for c in judged) / iterations / reference,
        }
    return {
        "per_iteration_gross_joules": gross,
        "per_iteration_net_joules": net,
        "per_iteration_uncertainty_joules": math.sqrt(spread**2 + systematic_per_iteration**2),
        "total_gross_joules": total_gross,
        "total_net_joules": sum(r.net_joules for r in spent),
        "duration_seconds": sum(r.seconds for r in rounds) + sum(w.seconds for w in outside),
        "co2_grams": carbon.grams(total_gross),
        "normalised": normalised,
    }


def per_iteration_stats(rounds: list[Round]) -> tuple[float, float, float]:
    """Mean gross, mean net and standard error of net joules per iteration over the valid rounds."""
    valid = [r for r in rounds if r.valid]
    if not valid:
        return math.nan, math.nan, math.nan
    iterations = sum(r.iterations for r in valid)
    gross = sum(r.gross_joules for r in valid) / iterations
    net = sum(r.net_joules for r in valid) / iterations
    if len(valid) < 2:
        return gross, net, 0.0
    values = [r.net_per_iteration for r in valid]
    mean = sum(values) / len(values)
    variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return gross, net, math.sqrt(variance / len(values))


def json_kind(value: Any) -> str:
    """What a value read from JSON is, as a refusal names it: "a list", "an int", "true", "null"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _misfit(value: Any, hint: Any) -> tuple[str, str] | None:
    """Why ``value`` is not of type ``hint`` (read from JSON: a float may be null, JSON's NaN): where
    inside it (".rounds[1].iterations", "" for itself) and what it is against what is expected; None
    where it fits. The path is built only for a misfit: a nightly import checks 100,000 records."""
    if hint is Any:
        return None
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in arguments:
            return None
        misfits = [_misfit(value, argument) for argument in arguments if argument is not type(None)]
        return None if None in misfits else misfits[0]
    if dataclasses.is_dataclass(hint):
        return _fields_misfit(value) if isinstance(value, hint) else ("", f"is {json_kind(value)}, expected an object")
    if origin in (list, tuple, dict):
        if not isinstance(value, origin):
            return "", f"is {json_kind(value)}, expected {'an object' if origin is dict else 'a list'}"
        if origin is dict:
            for key, item in value.items():
                if (found := _misfit(key, arguments[0])) is not None:
                    return f" key {key!r}", found[1]
                if (found := _misfit(item, arguments[1])) is not None:
                    return f"[{key!r}]{found[0]}", found[1]
            return None
        fixed = origin is tuple and not (len(arguments) == 2 and arguments[1] is Ellipsis)
        if fixed and len(value) != len(arguments):
            return "", f"has {len(value)} items, expected {len(arguments)}"
        for index, item in enumerate(value):
            if (found := _misfit(item, arguments[index] if fixed else arguments[0])) is not None:
                return f"[{index}]{found[0]}", found[1]
        return None
    if hint is float:
        fits = value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
    elif hint is int:
        fits = isinstance(value, int) and not isinstance(value, bool)
    else:
        fits = isinstance(value, hint)
    return None if fits else ("", f"is {json_kind(value)}, expected {hint.__name__}")


@functools.cache
def _field_types(cls: type) -> tuple[tuple[str, Any], ...]:
    """A dataclass's fields and their declared types, resolved once per class."""
    hints = typing.get_type_hints(cls)
    return tuple((item.name, hints[item.name]) for item in dataclasses.fields(cls))


def _fields_misfit(instance: Any) -> tuple[str, str] | None:
    for name, hint in _field_types(type(instance)):
        if (found := _misfit(getattr(instance, name), hint)) is not None:
            return f".{name}{found[0]}", found[1]
    return None


def misfit(instance: Any, where: str) -> str | None:
    """The first field of ``instance`` (a :class:`Record`, a :class:`RunInfo`, any dataclass read back
    from JSON), nested ones included, whose value is not of its declared type, as one phrase naming
    it under ``where`` ("session.run_id is a list, expected str"); None where every field fits. A
    store checks what it is given to write with this first, so one hand-edited or foreign file is
    refused by name, not half written."""
    found = _fields_misfit(instance)
    return None if found is None else f"{where}{found[0]} {found[1]}"


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by None, so it is valid JSON (null)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def session_document(records: list[Record], session: dict[str, Any], gate: dict[str, Any]) -> dict[str, Any]:
    """The ``--energy-json`` document: schema version, session facts, the gate's outcome and verdicts,
    and every record."""
    return finite({
        "schema_version": SCHEMA_VERSION,
        "session": session,
        "gate": gate,
        "records": [r.to_dict() for r in records],
    })


@dataclass
class RunInfo:
    """Facts about one pytest session that measured energy: the unit that history stores."""

    run_id: str  # unique per session, e.g. "20261123T120501Z-4f2a"
    started: str  # ISO 8601, UTC
    finished: str
    fingerprint: dict[str, Any]  # this machine's identity; fingerprint["id"] names the baselines folder
    git_commit: str | None
    settings: dict[str, Any]  # resolved settings (values only)
    carbon: Carbon
    idle_watts: dict[str, float]  # device -> idle power measured at session start
    reference_joules: dict[str, float]  # device -> joules of the reference workload (normalisation)
    notes: list[str] = field(default_factory=list)  # source warnings shown once
    exitstatus: int = 0  # the process's exit status, the gate's included (the tests' alone until judged)
    branch: str | None = None  # the git branch checked out (None outside git or on a detached head)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunInfo:
        """Rebuild run facts from :meth:`to_dict` output, a JSON document's ``session`` of any schema
        version (keys a hook added are ignored; ones an older version lacks keep their defaults)."""
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["carbon"] = Carbon(**data["carbon"])
        return cls(**kwargs)


def _under(nodeid: str, prefix: str) -> bool:
    """Whether a node id lies under a folder, module or node named by ``prefix`` ("" is the rootdir)."""
    return not prefix or nodeid == prefix or nodeid.startswith((prefix + "/", prefix + "::"))


@dataclass
class Collection:
    """What a run collected, to tell the baselines no collected test matched (a renamed test, another
    parametrisation, a removed one). Paths are node ids: relative to the rootdir, with "/".

    A baseline is matched by its test's node id where that test was collected (deselected ones count:
    ``-k`` only leaves them out of this run) and by its name where the test passed. Only baselines of the
    folders and modules the run collected whole can be told unmatched: a module named with ``::`` on the
    command line, a path ignored, a module skipped or broken at collection hides nothing.
    """

    tests: set[str] = field(default_factory=set)  # node ids collected, deselected ones too
    whole: set[str] = field(default_factory=set)  # folders and modules collected whole ("" is the rootdir)
    partial: set[str] = field(default_factory=set)  # modules of which only tests named with :: were collected
    left_out: set[str] = field(default_factory=set)  # paths ignored; collectors skipped or broken

    @staticmethod
    def nodeid(path: Path | str, root: Path | str) -> str | None:
        """A path as node ids name it (None outside ``root``)."""
        try:
            relative = Path(path).resolve().relative_to(Path(root).resolve())
        except ValueError:
            return None
        return "" if relative == Path(".") else relative.as_posix()

    def scope(self, args: Sequence[str], invocation_dir: Path | str, root: Path | str) -> None:
        """The paths a run collects, from its command-line arguments (or its testpaths)."""
        for arg in args:
            path, _, test = str(arg).partition("::")
            found = self.nodeid(Path(invocation_dir) / path, root)
            if found is not None:
                (self.partial if test else self.whole).add(found)

    def covers(self, nodeid: str) -> bool:
        """Whether the run collected the module of ``nodeid`` whole, so a test it lacks is gone."""
        module = nodeid.split("::", 1)[0]
        return (any(_under(module, path) for path in self.whole) and module not in self.partial
                and not any(_under(nodeid, path) for path in self.left_out))

    def to_dict(self) -> dict[str, list[str]]:
        return {key: sorted(getattr(self, key)) for key in ("tests", "whole", "partial", "left_out")}

    def merge(self, data: dict[str, Any]) -> None:
        """Add what another process (an xdist worker) collected."""
        for key in ("tests", "whole", "partial", "left_out"):
            getattr(self, key).update(str(v) for v in data.get(key, []))
