"""The ``pytest-energy`` command: history, baselines and the nightly report outside a test run.

    pytest-energy runs [--history PATH|URL] [--last N]
    pytest-energy history NAME [--history PATH|URL] [--last N]
    pytest-energy import RUN.json ... [--history PATH|URL]
    pytest-energy baselines [--baselines DIR]
    pytest-energy baselines update --from-history --last N [--branch NAME] [--history PATH|URL] [--set NAME]
                                                          [--profile NAME]
    pytest-energy report [--history PATH|URL] [--out PATH] [--last N] [--since DATE]
    pytest-energy report --from-json RUN.json --markdown [PATH]
    pytest-energy doctor [--require gpu|rapl|counter ...] [--json] [--devices SPEC] [--powercap DIR] [--cpu-tdp W]
    pytest-energy calibrate [--seconds N] [--write] [--devices SPEC] [--powercap DIR] [--cpu-tdp W] [target options]

Bad input gives one line on stderr and exit code 2; nothing here prints a traceback for a user error.
``doctor --require`` exits 3 when the runner cannot meet a requirement, ``calibrate`` when it cannot
meet the target.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Sequence

from ..core.config import BY_NAME, SettingError, is_database_url, refuse_overwrite
from ..core.profiles import DEFAULT as DEFAULT_PROFILE, profile_names
from ..core.units import format_energy, percent_change


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse would print the usage too)
        self.exit(2, f"pytest-energy: {message} (see pytest-energy --help)\n")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number >= 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pytest-energy", description="Energy history, baselines and reports of pytest-energy.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    history_default = BY_NAME["history"].default
    history_help = f"history store: an SQLite file or a postgresql:// URL (default {history_default})"

    runs = commands.add_parser("runs", help="list stored runs, newest first")
    runs.add_argument("--history", default=history_default, help=history_help)
    runs.add_argument("--last", type=_positive, default=20, help="how many runs (default 20)")

    case = commands.add_parser("history", help="one test's or case's energy across runs")
    case.add_argument("name", help="record name: the test node id, plus ::label for a labelled measurement")
    case.add_argument("--history", default=history_default, help=history_help)
    case.add_argument("--last", type=_positive, default=None, help="only the newest N runs")

    imported = commands.add_parser("import", help="append the runs of --energy-json files (CI artifacts) to a "
                                                  "history; a run held already is not stored again")
    imported.add_argument("files", nargs="+", metavar="RUN.json", help="--energy-json files (schema 1, 2 or 3)")
    imported.add_argument("--history", default=history_default, help=history_help)

    stored = commands.add_parser("baselines", help="list baseline sets, or write them from the history")
    stored.add_argument("--baselines", default=BY_NAME["baselines"].default,
                        help=f"baselines folder (default {BY_NAME['baselines'].default})")
    actions = stored.add_subparsers(dest="action", parser_class=_Parser)
    update = actions.add_parser("update", help="write baselines from the newest runs of the history, their "
                                               "rounds pooled per device kind")
    update.add_argument("--from-history", action="store_true", required=True,
                        help="pool the rounds of the newest --last runs of each device kind in --history")
    update.add_argument("--last", type=_positive, required=True, help="how many runs per device kind to pool")
    update.add_argument("--branch", default=None, help="only runs of this git branch (e.g. main)")
    update.add_argument("--history", default=history_default, help=history_help)
    update.add_argument("--baselines", default=BY_NAME["baselines"].default, dest="update_root",
                        help=f"baselines folder (default {BY_NAME['baselines'].default})")
    update.add_argument("--set", default=BY_NAME["baseline_set"].default, dest="set_name",
                        help=f"baseline set to write (default {BY_NAME['baseline_set'].default})")
    update.add_argument("--profile", default=DEFAULT_PROFILE, choices=profile_names(),
                        help="pool only the runs of this --energy-profile, into its own folder of the set "
                             f"(<set>@<profile>; default {DEFAULT_PROFILE})")

    report = commands.add_parser("report", help="the nightly report of the fleet from the history store (HTML, and "
                                                "its summary printed); or one run's markdown summary from its "
                                                "--energy-json file")
    report.add_argument("--history", default=history_default, help=history_help)
    # Not the session report's path: the nightly report must not overwrite the last run's.
    nightly_default = str(Path(BY_NAME["report"].default).with_name("energy-nightly.html"))
    report.add_argument("--out", default=nightly_default, help=f"HTML file to write (default {nightly_default})")
    report.add_argument("--last", type=_positive, default=None, help="only the newest N runs")
    report.add_argument("--since", type=_since, default=None, metavar="DATE",
                        help="only runs started on or after DATE (YYYY-MM-DD, or an ISO time in UTC)")
    report.add_argument("--from-json", default=None, metavar="RUN.json",
                        help="the --energy-json file of one run, for --markdown")
    report.add_argument("--markdown", nargs="?", const="-", default=None, metavar="PATH",
                        help="write the run's markdown summary (the pull-request comment --energy-markdown writes) "
                             "to PATH, or print it where no PATH is given")

    doctor = commands.add_parser("doctor", help="what this runner can measure, how well, with which settings")
    doctor.add_argument("--require", action="append", default=[], type=_requirement, metavar="gpu|rapl|counter",
                        help="exit 3 unless the runner measures a GPU, a RAPL counter, or any hardware counter "
                             "(repeatable; a registered source may answer a requirement of its own)")
    doctor.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    _runner_options(doctor)

    from .calibrate import DEFAULT_SECONDS, DEFAULT_TRIALS, DEFAULT_WINDOWS
    from ..judge.simulation import Target

    target = Target()
    calibrate = commands.add_parser("calibrate", help="measure this runner's noise and choose rounds, minimum "
                                                      "window and minimum effect for a target")
    calibrate.add_argument("--seconds", type=_fraction(0.0, None), default=DEFAULT_SECONDS,
                           help=f"seconds to measure for (default {DEFAULT_SECONDS:g}); the simulation "
                                "afterwards adds a few")
    calibrate.add_argument("--windows", type=_windows, default=DEFAULT_WINDOWS,
                           help=f"window lengths to measure, comma separated (default "
                                f"{','.join(f'{w:g}' for w in DEFAULT_WINDOWS)})")
    calibrate.add_argument("--write", action="store_true",
                           help="write energy_rounds, energy_min_window and energy_min_effect into "
                                "[tool.pytest.ini_options] of pyproject.toml")
    calibrate.add_argument("--max-false-alarms", type=_fraction(0.0, 1.0), default=target.max_false_alarms,
                           help=f"target: share of identical runs called a regression (default "
                                f"{target.max_false_alarms:g})")
    calibrate.add_argument("--min-detection", type=_fraction(0.0, 1.0), default=target.min_detection,
                           help=f"target: share of changed runs called a regression (default {target.min_detection:g})")
    calibrate.add_argument("--effect", type=_fraction(0.0, None), default=target.effect,
                           help=f"target: the change to detect, a fraction (default {target.effect:g})")
    calibrate.add_argument("--trials", type=_positive, default=DEFAULT_TRIALS,
                           help=f"simulated trials per setting and effect (default {DEFAULT_TRIALS})")
    calibrate.add_argument("--seed", type=int, default=0, help="seed of the simulation (default 0)")
    _runner_options(calibrate)
    return parser


def _requirement(text: str) -> str:
    """A ``doctor --require``: "counter", or the requirement a registered source answers ("gpu", "rapl")."""
    from ..measure.sources import registered_sources

    known = [*(source.requirement for source in registered_sources() if source.requirement), "counter"]
    if text not in known:
        raise argparse.ArgumentTypeError(f"unknown requirement {text!r}; known: {', '.join(known)}")
    return text


def _since(text: str) -> str:
    """An ISO date or time, as the history's run times are written (UTC), for comparing as text."""
    from datetime import datetime, timezone

    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a date YYYY-MM-DD or an ISO time") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.isoformat()


def _fraction(low: float, high: float | None):
    """A number > low (and <= high where given)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (value > low and (high is None or value <= high)):
            bound = f"in ({low:g}, {high:g}]" if high is not None else f"> {low:g}"
            raise argparse.ArgumentTypeError(f"{text!r}: expected a number {bound}")
        return value
    return parse


def _windows(text: str) -> tuple[float, ...]:
    parse = _fraction(0.0, None)
    try:
        values = tuple(sorted({parse(part) for part in text.split(",") if part.strip()}))
    except argparse.ArgumentTypeError:
        values = ()
    if not values:
        raise argparse.ArgumentTypeError(f"{text!r}: expected window seconds > 0 separated by commas, e.g. 0.5,1,2")
    return values


def _runner_options(command: argparse.ArgumentParser) -> None:
    """The plugin's options that decide what a runner command measures (ini and env apply as in pytest)."""
    command.add_argument("--devices", default=None, help=f"as --energy-devices: {BY_NAME['devices'].expected}")
    command.add_argument("--powercap", default=None, help="as --energy-powercap: where the RAPL tree is mounted")
    command.add_argument("--idle-seconds", default=None, help="as --energy-idle-seconds: the idle window")
    command.add_argument("--cpu-tdp", default=None, help="as --energy-cpu-tdp: the TDP a modelled CPU is estimated from")


def _runner_command(arguments: argparse.Namespace) -> int:
    """doctor and calibrate: settings resolved as the plugin resolves them in this folder's project."""
    from ..core.config import SettingError
    from .project import ProjectError, find_project, settings_for

    command = f"pytest-energy {arguments.command}"
    try:
        project = find_project()
        overrides = {"devices": arguments.devices, "powercap": arguments.powercap,
                     "idle_seconds": arguments.idle_seconds, "cpu_tdp": arguments.cpu_tdp}
        settings = settings_for(project, overrides, command)
        from ..measure.sources import parse_devices

        parse_devices(settings.devices)
    except (SettingError, ProjectError) as error:
        print(str(error), file=sys.stderr)
        return 2
    except ValueError as error:  # parse_devices: an unknown device, named with its source
        print(f"pytest-energy: {settings.sources['devices']}: {error}", file=sys.stderr)
        return 2
    if arguments.command == "doctor":
        from . import doctor

        return doctor.main(settings, project, required=arguments.require, as_json=arguments.json)
    from . import calibrate
    from ..judge.simulation import Target

    target = Target(arguments.max_false_alarms, arguments.min_detection, arguments.effect)
    return calibrate.main(settings, project, seconds=arguments.seconds, windows=arguments.windows, target=target,
                          trials=arguments.trials, seed=arguments.seed, write=arguments.write)


def _energy(joules: float | None) -> str:
    return format_energy(joules) if joules is not None and math.isfinite(joules) else "n/a"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]


def _location(text: str) -> Path | str:
    """A ``--history`` value: a database URL as given, else a file path."""
    return text if is_database_url(text) else Path(text)


def _runs(history_path: Path | str, last: int) -> list[str]:
    from ..store.history import History

    history = History(history_path)
    runs = history.runs(last)
    if not runs:
        return [f"no run stored in {history.where} yet"]
    rows = [["run", "started", "commit", "hardware", "records", "regressions", "gate", "exit", "net energy",
             "CO2 g"]]
    for run in runs:
        rows.append([
            run.run_id, run.started[:19], (run.git_commit or "-")[:12], run.fingerprint_id or "-",
            str(run.records), str(run.regressions), "failed" if run.gate_failed else "passed",
            "-" if run.exitstatus is None else str(run.exitstatus),
            _energy(run.total_net_joules), f"{run.co2_grams:.4g}" if run.co2_grams is not None else "n/a",
        ])
    return _table(rows)


def _case(history_path: Path | str, name: str, last: int | None) -> list[str]:
    from ..store.history import History

    history = History(history_path)
    points = history.case_history(name, last)
    if not points:
        raise LookupError(f"pytest-energy: no record named {name!r} in {history.where} "
                          "(`pytest-energy runs` lists runs; names are test node ids)")
    rows = [["started", "run", "commit", "net / iteration", "±", "methods", "verdict", "change"]]
    for point in points:
        change = percent_change(point.ratio) if point.ratio is not None else ""
        rows.append([
            point.started[:19], point.run_id, (point.git_commit or "-")[:12],
            _energy(point.per_iteration_net_joules), _energy(point.per_iteration_uncertainty_joules),
            ",".join(point.methods), point.status or "-", change,
        ])
    return [name, *_table(rows)]


def _baselines(root: Path) -> list[str]:
    from ..store.baselines import load_set

    if not root.is_dir():
        raise LookupError(f"pytest-energy: no baselines folder at {root} "
                          "(record one with pytest --energy --energy-update-baselines)")
    rows = [["set", "baselines", "files", "device kinds"]]
    errors: list[str] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        loaded = load_set(folder)
        files = {b.path for b in loaded.baselines.values()}
        kinds = sorted({kind for b in loaded.baselines.values() for kind in b.energy})
        rows.append([folder.name, str(len(loaded.baselines)), str(len(files) + len(loaded.broken)),
                     "; ".join(kinds) or "-"])
        errors += loaded.errors
    lines = _table(rows) if len(rows) > 1 else [f"no baseline set in {root} yet"]
    return lines + errors


def _check_out(out: Path, history: Path | str) -> None:
    """The report never replaces the history it reads, another store or a folder."""
    if isinstance(history, Path) and out.resolve() == history.resolve():
        raise SettingError(f"pytest-energy: --out {out} is the history store read (--history): give another path")
    refuse_overwrite(out, "--out")


def _markdown(arguments: argparse.Namespace) -> list[str]:
    """``report --from-json RUN.json --markdown [PATH]``: the markdown ``--energy-markdown`` wrote in that
    run, made again from its JSON (the same report, built from the records, verdicts and headline it holds)."""
    from ..report.markdown import render, write
    from ..report.model import Headline, build_report
    from .json_import import read_run

    if arguments.from_json is None or arguments.markdown is None:
        raise SettingError("pytest-energy: report --from-json RUN.json --markdown [PATH] go together: the markdown "
                           "is made from a run's --energy-json file (the nightly HTML report reads --history)")
    source = Path(arguments.from_json)
    run = read_run(source)
    try:
        headline = Headline.from_dict(run.headline) if run.headline else None
    except (KeyError, TypeError, ValueError):  # an odd headline: the one its exit status gives
        headline = None
    report = build_report(run.records, run.judgement, run.info, headline=headline)
    if arguments.markdown == "-":
        return [render(report).rstrip("\n")]
    out = Path(arguments.markdown)
    if out.resolve() == source.resolve():
        raise SettingError(f"pytest-energy: --markdown {out} is the JSON read (--from-json): give another path")
    refuse_overwrite(out, "--markdown")
    return [f"pytest-energy: {write(report, out)}"]


def _import(arguments: argparse.Namespace) -> tuple[list[str], int]:
    from .json_import import import_files
    from ..store.history import History

    result = import_files(History(_location(arguments.history)), [Path(f) for f in arguments.files])
    return result.lines, 2 if result.refused else 0


def _update_from_history(arguments: argparse.Namespace) -> list[str]:
    """``baselines update --from-history``: the newest runs' rounds pooled, written through the
    baselines' own update (a reviewable diff of the folder)."""
    from ..store.baselines import load_set, model_changed, pooled, set_folder, update
    from ..store.history import History

    history = History(_location(arguments.history))
    # A profile's runs measured another protocol (batch, counts, precision): never pooled with the default's.
    runs = [run for run in history.runs() if (arguments.branch is None or run.branch == arguments.branch)
            and ((run.info.get("settings") or {}).get("profile") or DEFAULT_PROFILE) == arguments.profile]
    if not runs:
        branch = f" of branch {arguments.branch}" if arguments.branch else ""
        profile = f" of profile {arguments.profile}" if arguments.profile != DEFAULT_PROFILE else ""
        raise LookupError(f"pytest-energy: no run{branch}{profile} in history {history.where}; nothing to pool "
                          "(`pytest-energy runs` lists runs; a run's branch is stored from schema 2 on)")
    records = history.records_of([run.run_id for run in runs])
    result = pooled([records[run.run_id] for run in runs], arguments.last)
    if not result.baselines:
        raise LookupError(f"pytest-energy: the {len(runs)} runs in history {history.where} hold no passed test's "
                          "valid record; no baseline written")
    folder = set_folder(Path(arguments.update_root), arguments.set_name, arguments.profile)
    stored = load_set(folder).baselines
    replaced = [b.name for b in result.baselines if b.name in stored and model_changed(stored[b.name], b)]
    written = update(folder, result.baselines, replaced)
    kinds = ", ".join(f"{kind} ({count} run{'s' if count > 1 else ''})"
                      for kind, count in sorted(result.runs_per_kind.items()))
    lines = list(written.errors)
    lines.append(f"pytest-energy: baselines {folder}: {len(written.written)} written from history {history.where}, "
                 f"rounds pooled per device kind: {kinds}"
                 + (f"; {len(written.refused)} refused (their file is unreadable, see above)" if written.refused else ""))
    lines += [f"  {how:9} {name}" + ("  (model changed: the old model's energy on every device kind dropped)"
                                      if name in replaced else "") for name, how in sorted(written.written.items())]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code (0 ok, 2 bad input or an unusable store, 3 a runner that
    cannot meet ``doctor --require`` or the ``calibrate`` target)."""
    from ..store.history import HistoryError
    from .json_import import ArtifactError

    arguments = _parser().parse_args(argv)
    if arguments.command in ("doctor", "calibrate"):
        return _runner_command(arguments)
    try:
        if arguments.command == "runs":
            lines = _runs(_location(arguments.history), arguments.last)
        elif arguments.command == "history":
            lines = _case(_location(arguments.history), arguments.name, arguments.last)
        elif arguments.command == "import":
            lines, code = _import(arguments)
            print("\n".join(lines))
            return code
        elif arguments.command == "baselines" and arguments.action == "update":
            lines = _update_from_history(arguments)
        elif arguments.command == "baselines":
            lines = _baselines(Path(arguments.baselines))
        elif arguments.from_json is not None or arguments.markdown is not None:
            lines = _markdown(arguments)
        else:
            from ..report import render_from_history  # jinja2 and the templates only for this command
            from ..report.terminal import fleet_lines

            _check_out(Path(arguments.out), _location(arguments.history))
            fleet = render_from_history(_location(arguments.history), Path(arguments.out), arguments.last,
                                        arguments.since)
            lines = [*fleet_lines(fleet), f"pytest-energy: nightly report written to {arguments.out}"]
    except (HistoryError, LookupError, SettingError) as error:
        print(str(error), file=sys.stderr)
        return 2
    except ArtifactError as error:
        print(f"{error}; no report made", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"pytest-energy: {error.filename or ''}: {error.strerror or error}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
