"""One settings object built from the command line, the environment and the ini file.

Precedence follows pytest-timeout: marker > command line > environment > ini > default. Every value
remembers where it came from, so an error names its source ("--energy-rounds", "PYTEST_ENERGY_ROUNDS",
"ini energy_rounds") and says what is expected.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


class SettingError(ValueError):
    """A setting has a value that cannot be used; the message is one line naming its source."""


def _at_least(kind: Callable[[str], float], minimum: float, *, strict: bool = False) -> Callable[[str], Any]:
    """A parser of ``kind`` numbers >= minimum (> minimum when strict); ValueError otherwise (also NaN)."""

    def parse(text: str) -> Any:
        value = kind(text)
        if not (value > minimum if strict else value >= minimum):
            raise ValueError
        return value

    return parse


_positive_float = _at_least(float, 0.0, strict=True)
_non_negative_float = _at_least(float, 0.0)
_positive_int = _at_least(int, 1)
_non_negative_int = _at_least(int, 0)
_pue = _at_least(float, 1.0)


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


def _text(text: str) -> str:
    return str(text)


#: What a device kind can be made of (see :func:`pytest_energy.fingerprint.device_kinds`): energy is
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


# Defaults come from ../shared/notes/measurement-facts.md and bench/: with the counter's 100 ms ticks
# interpolated at both window edges, a 1 s window has 0.8 % CV on an H100 (2.8 % read naively).
OPTIONS: tuple[Option, ...] = (
    Option("json", _text, None, "a file path", "write every record of the session to this JSON file"),
    Option("min_window", _positive_float, 1.0, "seconds > 0",
           "minimum length of one round's window; the function repeats until it is filled"),
    Option("rounds", _positive_int, 5, "an integer >= 1", "rounds (windows) per measured call"),
    Option("warmup", _non_negative_int, 3, "an integer >= 0", "unmeasured warm-up iterations before the rounds"),
    Option("devices", _text, "auto", "auto or a comma list of gpu, gpu:N, gpu:UUID, cpu, ram",
           "devices to measure"),
    Option("country", _country, None, "a 3-letter ISO country code such as FRA",
           "country whose grid carbon intensity applies (CodeCarbon's offline data)"),
    Option("carbon_intensity", _non_negative_float, None, "gCO2eq per kWh, a number >= 0",
           "explicit grid carbon intensity; overrides --energy-country"),
    Option("pue", _pue, 1.0, "a number >= 1.0", "power usage effectiveness of the data centre"),
    Option("powercap", _text, "/sys/class/powercap", "a folder path",
           "where the kernel's powercap (RAPL) tree is mounted"),
    Option("idle_seconds", _positive_float, 1.0, "seconds > 0",
           "length of the idle window measured once per session and device"),
    # Baselines and the gate.
    Option("baselines", _text, "baselines", "a folder path", "folder of stored baselines"),
    Option("update_baselines", _boolean, False, "true or false",
           "write or refresh baselines from this run", flag=True),
    Option("baseline_set", _text, "default", "a name", "baseline set to compare with and update"),
    Option("compare", _text, None, "a name", "also compare with this named baseline set (e.g. main)"),
    Option("min_effect", _non_negative_float, 0.05, "a fraction >= 0 such as 0.05",
           "smallest change that counts as a regression or improvement: of energy, and the default "
           "tolerance of quality and FLOP verdicts"),
    Option("device_kind_fields", _kind_fields, "product,count",
           f"a comma list of {', '.join(DEVICE_KIND_FIELDS)}",
           "what makes two devices the same kind for energy baselines (default: GPU or CPU model and "
           "how many devices a record spans; the host CPU never splits a GPU baseline)"),
    Option("fail_on_regression", _boolean, True, "true or false", "make a regression fail the session"),
    Option("gate_modelled", _boolean, False, "true or false",
           "let modelled (estimated) energy fail the gate too"),
    Option("normalise", _boolean, False, "true or false",
           "judge energy normalised by the session's reference workload"),
    Option("history", _text, "reports/energy-history.sqlite", "a file path", "SQLite store of run history"),
    # Reports and exports.
    Option("report", _text, "reports/energy-report.html", "a file path", "self-contained HTML report"),
    Option("csv", _text, None, "a file path", "CodeCarbon-compatible emissions CSV"),
    Option("model_card", _text, None, "a folder path",
           "write a model-card co2_eq_emissions block per fine-tune case into this folder"),
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
        """A copy with marker keywords applied (validated like any other source)."""
        values, sources = dict(self.values), dict(self.sources)
        for name, raw in overrides.items():
            values[name] = parse_value(BY_NAME[name], raw, source)
            sources[name] = source
        return Settings(self.enabled, values, sources)


def path_setting(value: Any, root: Path | str | None) -> Path | None:
    """A configured file or folder: None where unset, "" or "none" (that output is off); a relative
    path is taken from ``root`` (pytest's rootdir), else from the current folder."""
    if value is None or str(value).strip().lower() in ("", "none"):
        return None
    path = Path(str(value))
    return path if path.is_absolute() or not root else Path(root) / path


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
        cli_value = cli.get(option.dest)
        if option.flag and cli_value is False:
            cli_value = None  # store_true left unset: fall through to env and ini
        if cli_value is not None:
            raw, source = cli_value, option.cli
        elif environ.get(option.env):
            raw, source = environ[option.env], option.env
        elif ini(option.ini) not in (None, ""):
            raw, source = ini(option.ini), f"ini {option.ini}"
        else:
            settings.values[option.name] = option.default
            settings.sources[option.name] = "default"
            continue
        settings.values[option.name] = parse_value(option, raw, source)
        settings.sources[option.name] = source
    return settings
