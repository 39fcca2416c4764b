"""One settings object built from the command line, the environment and the ini file.

Precedence follows pytest-timeout: marker > command line > environment > ini > default. Every value
remembers where it came from, so an error names its source ("--energy-rounds", "PYTEST_ENERGY_ROUNDS",
"ini energy_rounds", "energy marker rounds") and says what is expected.

Every number is finite and within a range of its own (``inf`` or ``1e400`` would hang a window, overflow
the idle window or report 0 g CO2). An empty value means the same from every source: for an output (a
file or folder pytest-energy writes) it turns that output off, as ``none`` does; for any other option it
is no value, so the next source applies. No output may name another output's path, an existing SQLite
store, a folder or a file inside the baselines folder; these cross-checks are made where measurement is
on (:func:`check`; the device names are checked beside it, by :func:`pytest_energy.measure.sources.check_devices`).
Every file, folder and store pytest-energy writes is one row of :data:`OUTPUTS`, which these checks and
the report's writers read.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import quote

if TYPE_CHECKING:
    from sqlalchemy.engine import URL


class SettingError(ValueError):
    """A setting has a value that cannot be used; the message is one line naming its source."""


def _within(kind: Callable[[str], float], low: float, high: float, *, above_low: bool = False) -> Callable[[str], Any]:
    """A parser of ``kind`` numbers from ``low`` (excluded when ``above_low``) to ``high``; ValueError
    otherwise, so NaN and infinity never pass."""

    def parse(text: str) -> Any:
        value = kind(text)
        if not ((value > low if above_low else value >= low) and value <= high):
            raise ValueError
        return value

    return parse


#: Upper bounds (sane, not physical): a window, or the idle window, of up to 10 minutes; enough rounds
#: for any verdict; a PUE of 5 is beyond the worst data centre; the most carbon-intense grids are
#: about 1,100 g/kWh; a min-effect above 1 (a doubling) would leave no gate.
MAX_SECONDS = 600.0
MAX_ROUNDS = 1000
MAX_WARMUP = 10_000
MAX_PUE = 5.0
MAX_INTENSITY_G_PER_KWH = 2000.0
MAX_MIN_EFFECT = 1.0
#: --energy-top lists at most this many tests (a listing, not a dump of the suite).
MAX_TOP = 10_000
#: Training runs per case for the spread between runs: each is a whole training, so a few, not hundreds.
MAX_QUALITY_SEEDS = 50
#: A CPU's rated power: the largest server CPUs are rated about 500 W.
MAX_TDP_WATTS = 1000.0
#: GPUs one xdist worker may be given: the largest single machines hold 16.
MAX_GPUS_PER_WORKER = 64

_seconds = _within(float, 0.0, MAX_SECONDS, above_low=True)
_rounds = _within(int, 1, MAX_ROUNDS)
_warmup = _within(int, 0, MAX_WARMUP)
_pue = _within(float, 1.0, MAX_PUE)
_intensity = _within(float, 0.0, MAX_INTENSITY_G_PER_KWH)
_min_effect = _within(float, 0.0, MAX_MIN_EFFECT)
_top = _within(int, 0, MAX_TOP)
_quality_seeds = _within(int, 1, MAX_QUALITY_SEEDS)
_tdp = _within(float, 0.0, MAX_TDP_WATTS, above_low=True)
_gpus_per_worker = _within(int, 1, MAX_GPUS_PER_WORKER)


def _boolean(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError


def _country(text: str) -> str:
    code = text.strip().upper()
    if not (len(code) == 3 and code.isalpha()):
        raise ValueError
    return code


_COOLDOWN = re.compile(r"\s*(\d+(?:\.\d*)?)\s*([cs])\s*", re.IGNORECASE)


def parse_cooldown(text: str) -> tuple[float, str]:
    """``"45C"`` -> (45.0, "C"): wait until at or below 45 degC; ``"5s"`` -> (5.0, "s"): idle for 5 s.
    Raises ``ValueError`` for anything else."""
    found = _COOLDOWN.fullmatch(str(text))
    if not found:
        raise ValueError(f"{text!r} is neither a temperature such as 45C nor a time such as 5s")
    return float(found.group(1)), "C" if found.group(2).lower() == "c" else "s"


def _cooldown(text: str) -> str:
    """A temperature in degC ("45C", at most 120) or an idle time in seconds ("5s"), normalised."""
    value, unit = parse_cooldown(text)
    if not 0 < value <= (120.0 if unit == "C" else MAX_SECONDS):
        raise ValueError
    return f"{value:g}{unit}"


def _text(text: str) -> str:
    return str(text)


def _profile(text: str) -> str:
    """A measurement profile's name (:mod:`pytest_energy.core.profiles`)."""
    from .profiles import profile_names

    name = text.strip().lower()
    if name not in profile_names():
        raise ValueError
    return name


def _output(text: str) -> str | None:
    """A file or folder to write; empty or ``none`` turns it off (None)."""
    return None if text.strip().lower() in ("", "none") else text


#: What a device kind can be made of (see :func:`pytest_energy.measure.fingerprint.device_kinds`): energy is
#: judged only against a baseline measured on the same kind. ``product`` is the GPU model or the CPU
#: model, ``count`` the number of devices a record spans; the rest split kinds further on purpose.
DEVICE_KIND_FIELDS = ("product", "count", "power_limit", "driver", "clocks", "host_cpu", "logical_cpus")


def _kind_fields(text: str) -> str:
    """A comma list of DEVICE_KIND_FIELDS, normalised ("product, count" -> "product,count")."""
    fields = list(dict.fromkeys(part.strip() for part in str(text).split(",") if part.strip()))
    if not fields or any(name not in DEVICE_KIND_FIELDS for name in fields):
        raise ValueError
    return ",".join(fields)


@dataclass(frozen=True)
class Option:
    """One setting: its name (``energy_<name>`` in ini, ``--energy-<name>`` on the command line)."""

    name: str
    parse: Callable[[str], Any]
    default: Any
    expected: str
    help: str
    flag: bool = False  # a store_true option on the command line

    @property
    def output(self) -> bool:
        """A file or folder pytest-energy writes: an empty value or ``none`` turns it off."""
        return self.parse is _output

    @property
    def switch(self) -> bool:
        """A true/false option given as a pair of flags on the command line, ``--energy-normalise`` and
        ``--energy-no-normalise``: a flag never takes the next argument (a test path) as its value."""
        return not self.flag and self.parse is _boolean

    @property
    def negative_cli(self) -> str:
        return "--energy-no-" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        return f"energy_{self.name}"

    @property
    def cli(self) -> str:
        return "--energy-" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "PYTEST_ENERGY_" + self.name.upper()

    @property
    def dest(self) -> str:
        return f"energy_{self.name}"


# Defaults come from the H100 measurements in docs/sources.md and from bench/: with the counter's 100 ms ticks
# interpolated at both window edges, a 1 s window has 0.8 % CV on an H100 (2.8 % read naively).
OPTIONS: tuple[Option, ...] = (
    Option("json", _output, None, "a file path", "write every record of the session to this JSON file"),
    Option("min_window", _seconds, 1.0, f"seconds > 0 and <= {MAX_SECONDS:g}",
           "minimum length of one round's window; the function repeats until it is filled"),
    Option("rounds", _rounds, 5, f"an integer >= 1 and <= {MAX_ROUNDS}", "rounds (windows) per measured call"),
    Option("warmup", _warmup, 3, f"an integer >= 0 and <= {MAX_WARMUP}",
           "unmeasured warm-up iterations before the rounds"),
    Option("devices", _text, "auto", "auto or a comma list of gpu, gpu:N, gpu:UUID, cpu, ram",
           "devices to measure"),
    Option("country", _country, None, "a 3-letter ISO country code such as FRA",
           "country whose grid carbon intensity applies (CodeCarbon's offline data)"),
    Option("carbon_intensity", _intensity, None, f"gCO2eq per kWh, a number >= 0 and <= {MAX_INTENSITY_G_PER_KWH:g}",
           "explicit grid carbon intensity; overrides --energy-country"),
    Option("pue", _pue, 1.0, f"a number >= 1.0 and <= {MAX_PUE:g}", "power usage effectiveness of the data centre"),
    Option("powercap", _text, "/sys/class/powercap", "a folder path",
           "where the kernel's powercap (RAPL) tree is mounted"),
    Option("cpu_tdp", _tdp, None, f"watts > 0 and <= {MAX_TDP_WATTS:g}",
           "the CPU's rated power (TDP) that modelled CPU energy is estimated from, where no RAPL counter reads "
           "it (default: CodeCarbon's cpu_power.csv, else its 85 W guess)"),
    Option("gpus_per_worker", _gpus_per_worker, None, f"an integer >= 1 and <= {MAX_GPUS_PER_WORKER}",
           "give each pytest-xdist worker this many GPUs of its own (its CUDA_VISIBLE_DEVICES, set before it "
           "starts), so no worker's window counts another's work; -n auto starts one worker per block"),
    Option("idle_seconds", _seconds, 1.0, f"seconds > 0 and <= {MAX_SECONDS:g}",
           "length of the idle window measured once per session and device"),
    Option("top", _top, 0, f"an integer >= 0 and <= {MAX_TOP}",
           "list the N tests with the most energy, each test's call read as one window of its own "
           "(0: off); they are never judged unless marked"),
    Option("cooldown", _cooldown, None, f"a temperature such as 45C (at most 120) or seconds such as 5s "
           f"(at most {MAX_SECONDS:g})", "before each measurement wait until the GPUs are at or below this "
           "temperature, or idle this long (at most 120 s more; after a miss, no more waiting that session)"),
    Option("profile", _profile, "default", "default or ai-energy-score",
           "the protocol inference cases are measured with: default (each case as declared) or ai-energy-score "
           "(the cases of its tasks: 1,000 queries at batch size 1, 10 runs, float32, text generation in float16 "
           "where the device supports it; other cases skipped); records say it and keep their own baselines"),
    Option("count_flops", _boolean, True, "true or false",
           "count the FLOPs of the torch operations a measured call runs, on its first warm-up call (a block's: "
           "on the call given as its work): the work the gate judges on any runner"),
    # Baselines and the gate.
    Option("baselines", _output, "baselines", "a folder path", "folder of stored baselines"),
    Option("update_baselines", _boolean, False, "true or false",
           "write or refresh baselines from this run", flag=True),
    Option("baseline_set", _text, "default", "a name", "baseline set to compare with and update"),
    Option("compare", _text, None, "a name", "also compare with this named baseline set (e.g. main)"),
    Option("quality_seeds", _quality_seeds, 1, f"an integer >= 1 and <= {MAX_QUALITY_SEEDS}",
           "train each case whose model is trained in the run this many times (the case's seed and the next "
           "ones, alternating 1 thread and all), keeping each run's quality: the spread between runs that "
           "--energy-update-baselines stores and quality verdicts respect"),
    Option("min_effect", _min_effect, 0.05, f"a fraction >= 0 and <= {MAX_MIN_EFFECT:g} such as 0.05",
           "smallest change that counts as a regression or improvement: of energy, and the default "
           "tolerance of quality and FLOP verdicts"),
    Option("device_kind_fields", _kind_fields, "product,count",
           f"a comma list of {', '.join(DEVICE_KIND_FIELDS)}",
           "what makes two devices the same kind for energy baselines (default: GPU or CPU model and "
           "how many devices a record spans; the host CPU never splits a GPU baseline)"),
    Option("fail_on_regression", _boolean, True, "true or false", "make a regression fail the session"),
    Option("require_baselines", _boolean, False, "true or false",
           "fail the gate on a test without a baseline (new) and on a baseline no collected test matched "
           "(a renamed or removed test), except in an update run"),
    Option("gate_modelled", _boolean, False, "true or false",
           "let modelled (estimated) energy fail the gate and its test's energy budgets too"),
    Option("normalise", _boolean, False, "true or false",
           "judge energy normalised by the session's reference workload"),
    Option("history", _output, "reports/energy-history.sqlite", "a file path or a database URL",
           "history store: an SQLite file, or a postgresql:// URL a fleet shares"),
    # Reports and exports.
    Option("report", _output, "reports/energy-report.html", "a file path", "self-contained HTML report"),
    Option("csv", _output, None, "a file path", "CodeCarbon-compatible emissions CSV"),
    Option("model_card", _output, None, "a folder path",
           "write a model-card co2_eq_emissions block per fine-tune case into this folder"),
    Option("markdown", _output, None, "a file path",
           "GitHub-flavoured markdown summary for a pull-request comment: the headline first, then "
           "regressions and missed budgets, then every result folded; at most 65,536 characters"),
    # Experiment trackers and monitoring (each an optional extra, imported only when configured): a copy of
    # the run where ML teams already look; one that fails is one line, never the exit status.
    Option("mlflow", _output, None, "an MLflow tracking URI (sqlite:///mlflow.db, http://host:5000, ...) or "
           "default", "log the session as one MLflow run (nested under the active run): tags, one metric per "
           "record and figure, the HTML report and JSON as artifacts; default: MLflow's own tracking URI "
           "(MLFLOW_TRACKING_URI)"),
    Option("wandb", _output, None, "a W&B project name, or entity/project",
           "log the session as one Weights & Biases run in this project: summary metrics, a table of records, "
           "the HTML report and JSON as an artifact; offline unless WANDB_MODE says otherwise"),
    Option("prometheus", _output, None, "a file path (*.prom for node_exporter)",
           "write the records as Prometheus text exposition for node_exporter's textfile collector: joules "
           "per unit per test and device kind, CO2, the verdict as a gauge"),
    Option("prometheus_push", _output, None, "a Pushgateway URL such as http://pushgateway:9091",
           "push the same metrics to this Prometheus Pushgateway (job pytest-energy, grouped by runner)"),
)

BY_NAME = {option.name: option for option in OPTIONS}


@dataclass
class Settings:
    """Resolved values and where each came from."""

    enabled: bool = False
    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        raise AttributeError(name)

    def with_overrides(self, overrides: dict[str, Any], source: str) -> Settings:
        """A copy with marker keywords applied, validated like any other source: an error names
        ``source`` and the keyword ("energy marker rounds")."""
        values, sources = dict(self.values), dict(self.sources)
        for name, raw in overrides.items():
            values[name] = parse_value(BY_NAME[name], raw, f"{source} {name}")
            sources[name] = source
        return Settings(self.enabled, values, sources)


def path_setting(value: Any, root: Path | str | None) -> Path | None:
    """A configured file or folder: None where unset, "" or "none" (that output is off); a relative
    path is taken from ``root`` (pytest's rootdir), else from the current folder."""
    if value is None or str(value).strip().lower() in ("", "none"):
        return None
    path = Path(str(value))
    return path if path.is_absolute() or not root else Path(root) / path


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_database_url(value: Any) -> bool:
    """Whether a store setting is a database URL (``postgresql://...``) rather than a file path."""
    return isinstance(value, str) and bool(_URL.match(value.strip()))


def store_setting(value: Any, root: Path | str | None) -> Path | str | None:
    """The history setting: a database URL as given, else a path as :func:`path_setting` takes it."""
    return value.strip() if is_database_url(value) else path_setting(value, root)


#: libpq's connection parameters that hold a secret, where a URL's query gives them.
SECRET_PARAMETERS = ("password", "sslpassword")
#: What a hidden password reads as (SQLAlchemy's own mask).
HIDDEN = "***"


def _credentials_end(text: str) -> int:
    """Where the user and password of a URL end (the index of their ``@``, -1 without): at the last
    ``@`` before the query, so a password holding an unescaped ``@`` or ``/`` ends where its writer
    meant, as libpq's ``user:p@ss@host`` is read by people."""
    rest = text.index("://") + 3
    first = text.find("@", rest)
    if first < 0:
        return -1
    query = text.find("?", first)
    return text.rfind("@", rest, query if query >= 0 else len(text))


def database_url(text: str) -> URL:
    """A database URL parsed by SQLAlchemy's ``make_url`` as its writer means it: the user and password
    end at the last ``@`` before the query (an unescaped ``@`` or ``/`` in the password stays in it).
    Raises ValueError where it cannot be parsed."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    text = text.strip()
    end = _credentials_end(text)
    if end >= 0:  # make_url ends the password at its first "@": escape the ones before the last
        start = text.index("://") + 3
        text = text[:start] + text[start:end].replace("@", "%40") + text[end:]
    try:
        return make_url(text)
    except ArgumentError:
        raise ValueError("not a database URL") from None  # never the URL itself: it may hold the password


def _masked_conservatively(text: str) -> str:
    """A URL that cannot be parsed safely: every secret parameter's value, then everything between
    ``//`` and the last ``@``, masked (the password is somewhere in there)."""
    names = "|".join(SECRET_PARAMETERS)
    text = re.sub(rf"([?&](?:{names})=)[^&]*", rf"\g<1>{HIDDEN}", text, flags=re.IGNORECASE)
    start, end = text.index("://") + 3, text.rfind("@")
    return text[:start] + HIDDEN + text[end:] if end >= start else text


def _parsed_faithfully(text: str) -> bool:
    """Whether make_url's reading of ``text`` leaves no part of a password outside the password and the
    secret parameters: no ``@`` after the credentials but in a secret parameter's value (a password
    holding ``?`` then ``@`` would otherwise spill into the host or the query)."""
    end = _credentials_end(text)
    _, _, query = text[end + 1:].partition("?")
    return all("@" not in part or part.split("=", 1)[0].lower() in SECRET_PARAMETERS for part in query.split("&"))


def hide_password(location: Path | str, *, drop: bool = False) -> str:
    """A history location as it may be printed or stored: a path as it is; a database URL with its
    password (in the user info, or ``password=`` / ``sslpassword=`` in the query) shown as ``***``, or
    left out with ``drop`` (what a record keeps: libpq then finds the password in ``PGPASSWORD``,
    ``~/.pgpass`` or a ``PGSERVICE``, as it does for a URL given without one). A URL that cannot be
    parsed safely has everything between ``//`` and its last ``@`` masked."""
    if not is_database_url(location):
        return str(location)
    text = str(location).strip()
    try:
        url = database_url(text)
    except ValueError:
        url = None
    if url is None or not _parsed_faithfully(text):
        return _masked_conservatively(text)
    secret = [name for name in url.query if name.lower() in SECRET_PARAMETERS]
    if drop:
        return url._replace(password=None).difference_update_query(secret).render_as_string(hide_password=False)
    shown = url.update_query_dict({name: HIDDEN for name in secret}).render_as_string(hide_password=True)
    return shown.replace(quote(HIDDEN, safe=""), HIDDEN)  # the query's mask as the password's reads


#: The settings whose value may be a URL holding a password: the history store's and the trackers' servers.
URL_SETTINGS = ("history", "mlflow", "prometheus_push")


def hidden_secrets(values: dict[str, Any], *, drop: bool = False) -> dict[str, Any]:
    """Settings' values with the password of each URL among them (:data:`URL_SETTINGS`) hidden, or left
    out with ``drop``: what a record keeps (the JSON document and the history's rows, which CI uploads
    and imports)."""
    kept = dict(values)
    for name in URL_SETTINGS:
        if is_database_url(kept.get(name)):
            kept[name] = hide_password(kept[name], drop=drop)
    return kept


def parse_value(option: Option, raw: Any, source: str) -> Any:
    """Parse one raw value; a bad one raises :class:`SettingError` naming the source."""
    if raw is None:
        return None
    if isinstance(raw, bool) and option.parse is _boolean:
        return raw
    try:
        return option.parse(str(raw))
    except (TypeError, ValueError):
        raise SettingError(
            f"pytest-energy: {source} has {raw!r}, expected {option.expected}"
        ) from None


def enabled(cli_flag: bool, ini_flag: bool, environ: dict[str, str] | None = None) -> bool:
    """Measurement is on with ``--energy``, ``PYTEST_ENERGY=1`` or ini ``energy = true``."""
    environ = os.environ if environ is None else environ
    if cli_flag:
        return True
    if environ.get("PYTEST_ENERGY"):
        try:
            return _boolean(environ["PYTEST_ENERGY"])
        except ValueError:
            raise SettingError(
                f"pytest-energy: PYTEST_ENERGY has {environ['PYTEST_ENERGY']!r}, expected true or false"
            ) from None
    return bool(ini_flag)


class _Unset:
    def __repr__(self) -> str:
        return "unset"


#: The ini default of every option: an absent key, told apart from an empty one (``energy_report =``).
INI_UNSET: Any = _Unset()


def _given(
    option: Option, cli: dict[str, Any], ini: Callable[[str], Any], environ: dict[str, str]
) -> tuple[Any, str] | None:
    """The raw value and its source from the first source that gives one: command line > environment > ini."""
    for raw, source in ((cli.get(option.dest), option.cli), (environ.get(option.env), option.env),
                        (ini(option.ini), f"ini {option.ini}")):
        if raw is None or raw is INI_UNSET or (option.flag and raw is False):
            continue  # a store_true flag left unset falls through too
        if isinstance(raw, str) and not raw.strip() and not option.output:
            continue  # an empty value is no value, except for an output, which it turns off
        return raw, source
    return None


def resolve(
    enabled: bool,
    cli: dict[str, Any],
    ini: Callable[[str], Any],
    environ: dict[str, str] | None = None,
) -> Settings:
    """Build settings from parsed CLI values, an ini getter and the environment."""
    environ = os.environ if environ is None else environ
    settings = Settings(enabled=enabled)
    for option in OPTIONS:
        given = _given(option, cli, ini, environ)
        if given is None:
            settings.values[option.name] = option.default
            settings.sources[option.name] = "default"
            continue
        raw, source = given
        settings.values[option.name] = parse_value(option, raw, source)
        settings.sources[option.name] = source
    return settings


def named(settings: Settings, name: str) -> str:
    """Where a setting came from, as an error names it: "--energy-json", "ini energy_history (default)"."""
    source = settings.sources.get(name, "default")
    return f"{BY_NAME[name].cli} (default)" if source == "default" else source


@dataclass(frozen=True)
class Output:
    """One file, folder or store pytest-energy writes: the setting that names its path (or the environment
    variable that does), its shape, and, for those written from the report, the writer:
    ``"module:function"`` (a module name starting with "." is one of :mod:`pytest_energy.report`'s), called
    as ``function(report, path)`` and returning the line to show (a list of lines with ``lines``)."""

    setting: str = ""
    # "file" | "folder" | "store" (the history: a file or a database it appends to) | "service" (a
    # tracker's URI or project: no path of ours)
    shape: str = "file"
    writer: str = ""  # "" where another stage writes it (the JSON, the history, the baselines)
    environ: str = ""  # the variable naming its path where no setting does
    lines: bool = False
    what: str = ""  # what a line says it could not write, for those written from the report
    # A tracker's copy of the run (MLflow, W&B, Prometheus): written after every other output, whose files
    # it attaches, and called as ``function(report, target, attachments)``; its failure is one line and
    # never the run's exit status (a monitoring copy, not an artifact the next CI step needs).
    tracker: bool = False

    def path(self, settings: Any, root: Path | str | None) -> Path | None:
        """Where this output goes, or None where it is off (a store at a database URL, or a service, has no path)."""
        if self.environ:
            value = os.environ.get(self.environ)
            return Path(value) if value else None
        value = getattr(settings, self.setting, None)
        if self.shape == "service" or (self.shape == "store" and is_database_url(value)):
            return None
        return path_setting(value, root)

    def target(self, settings: Any, root: Path | str | None) -> Path | str | None:
        """Where this output goes: its path, or a service's URI or project as given; None where it is off."""
        if self.shape != "service":
            return self.path(settings, root)
        value = getattr(settings, self.setting, None)
        return None if value is None or not str(value).strip() else str(value).strip()


#: Every output, in order. A new one is one row here (its path setting in :data:`OPTIONS`, its writer
#: beside the others in :mod:`pytest_energy.report`); the overlap checks and the report read this table.
OUTPUTS: tuple[Output, ...] = (
    Output("json", what="the energy JSON"),
    Output("history", "store"),
    Output("report", writer=".html:write", what="the HTML report"),
    Output("csv", writer=".exports:write_emissions_csv", what="the emissions CSV"),
    Output("model_card", "folder", writer=".exports:write_model_cards", lines=True, what="the model cards"),
    Output("markdown", writer=".markdown:write", what="the markdown summary"),
    Output("baselines", "folder"),
    Output(environ="GITHUB_STEP_SUMMARY", writer=".markdown:append_step_summary", what="the step summary"),
    Output("mlflow", "service", writer=".trackers.mlflow:log_run", what="the MLflow run", tracker=True),
    Output("wandb", "service", writer=".trackers.wandb:log_run", what="the W&B run", tracker=True),
    Output("prometheus", writer=".trackers.prometheus:write", what="the Prometheus metrics file", tracker=True),
    Output("prometheus_push", "service", writer=".trackers.prometheus:push", what="the Pushgateway push",
           tracker=True),
)


def check(settings: Settings, root: Path | str | None) -> None:
    """Checks across settings, once at the start where measurement is on: no output writes over another
    output or a store. Raises :class:`SettingError` with one line."""
    if settings.enabled:
        _check_outputs(settings, root)


SQLITE_HEADER = b"SQLite format 3\0"


def is_sqlite_store(path: Path) -> bool:
    """Whether ``path`` is an existing regular file that starts as every SQLite database does (a FIFO
    is not opened: reading it would wait for a writer)."""
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as file:
            return file.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


def refuse_overwrite(path: Path, named: str) -> None:
    """Raise :class:`SettingError` where writing a file at ``path`` would replace a store or a folder."""
    if path.is_dir():
        raise SettingError(f"pytest-energy: {named} names the folder {path}: give a file path")
    if is_sqlite_store(path):
        raise SettingError(f"pytest-energy: {named} names {path}, an SQLite store (a history?): "
                           "it is never written over; give another path")


def _check_outputs(settings: Settings, root: Path | str | None) -> None:
    named_outputs = [output for output in OUTPUTS if output.setting]
    paths = {output.setting: output.path(settings, root) for output in named_outputs}
    seen: dict[Path, str] = {}
    for name, path in paths.items():
        if path is None:
            continue
        where = path.resolve()
        if where in seen:
            raise SettingError(f"pytest-energy: {named(settings, seen[where])} and {named(settings, name)} "
                               f"both name {path}: give each output a path of its own")
        seen[where] = name
    baselines = paths["baselines"].resolve() if paths["baselines"] is not None else None
    for output in named_outputs:
        path = paths[output.setting]
        if output.shape != "file" or path is None:
            continue
        refuse_overwrite(path, named(settings, output.setting))
        if baselines is not None and baselines in path.resolve().parents:
            raise SettingError(f"pytest-energy: {named(settings, output.setting)} names {path}, inside the baselines "
                               f"folder {paths['baselines']}: give a path outside it")
