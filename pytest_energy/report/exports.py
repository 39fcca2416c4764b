"""Energy in other tools' formats: CodeCarbon's emissions CSV, JUnit XML properties, pytest-benchmark's
``extra_info``, Hugging Face model-card ``co2_eq_emissions`` blocks (with the ratings of
:mod:`pytest_energy.report.ratings`). The markdown of the step summary and the pull-request comment is
:mod:`pytest_energy.report.markdown`.

CodeCarbon is never imported: its column names are fixed here (and checked against its source in the
tests), so a CSV written here loads wherever CodeCarbon's does.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from pathlib import Path
from typing import Any

from ..core.figures import wh_per_1000
from ..core.record import Record, finite
from ..core.units import JOULES_PER_KWH, finite_number
from ..store.locking import atomic_write_text, locked
from .model import Report, Row, model_text, per_unit
from .ratings import reporting_practice

#: ``codecarbon.output_methods.emissions_data.EmissionsData`` fields, in its CSV column order
#: (codecarbon 3.3). Units as CodeCarbon's: s, kg CO2eq, kg/s, W, kWh (device energy x PUE), L.
CODECARBON_COLUMNS = (
    "timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions", "emissions_rate",
    "cpu_power", "gpu_power", "ram_power", "cpu_energy", "gpu_energy", "ram_energy", "energy_consumed",
    "water_consumed", "country_name", "country_iso_code", "region", "cloud_provider", "cloud_region",
    "os", "python_version", "codecarbon_version", "cpu_count", "cpu_model", "gpu_count", "gpu_model",
    "longitude", "latitude", "ram_total_size", "tracking_mode", "cpu_utilization_percent",
    "gpu_utilization_percent", "ram_utilization_percent", "ram_used_gb", "on_cloud", "pue", "wue",
)
#: Our component kinds in CodeCarbon's three columns (RAPL's DRAM domain is its RAM).
_CODECARBON_KIND = {"cpu": "cpu", "gpu": "gpu", "dram": "ram", "ram": "ram"}


# -- per-test exports ----------------------------------------------------------------------------
def _g(value: float) -> str:
    return "nan" if not math.isfinite(value) else format(value, ".6g")


def junit_properties(record: Record) -> list[tuple[str, str]]:
    """``energy_*`` properties of one record for ``item.user_properties`` (JUnit XML, pytest-html).

    ``energy_record`` opens each record's group, so a test with several labelled measurements keeps
    them apart.
    """
    properties = [
        ("energy_record", record.name),
        ("energy_joules_per_iteration", _g(record.per_iteration_net_joules)),
        ("energy_per", per_unit(record)),
        ("energy_gross_joules_per_iteration", _g(record.per_iteration_gross_joules)),
        ("energy_uncertainty_joules", _g(record.per_iteration_uncertainty_joules)),
        ("energy_total_gross_joules", _g(record.total_gross_joules)),
        ("energy_co2_grams", _g(record.co2_grams)),
        ("energy_iterations", str(record.iterations)),
        ("energy_method", ",".join(record.methods)),
        ("energy_devices", ",".join(c.device for c in record.components)),
    ]
    if record.unit == "inference":
        properties.append(("energy_wh_per_1000_inferences", _g(wh_per_1000(record.per_iteration_gross_joules))))
    for metric, data in record.quality.items():
        value = data.get("value") if isinstance(data, dict) else data
        if finite_number(value) is not None:
            properties.append((f"energy_quality_{metric}", _g(value)))
    return properties


def benchmark_extra_info(record: Record) -> dict[str, Any]:
    """Energy of a test that also uses pytest-benchmark, for ``benchmark.extra_info`` (its JSON)."""
    info: dict[str, Any] = {
        "energy_record": record.name,
        "energy_joules_per_iteration": finite_number(record.per_iteration_net_joules),
        "energy_gross_joules_per_iteration": finite_number(record.per_iteration_gross_joules),
        "energy_uncertainty_joules": finite_number(record.per_iteration_uncertainty_joules),
        "energy_total_gross_joules": finite_number(record.total_gross_joules),
        "energy_co2_grams": finite_number(record.co2_grams),
        "energy_iterations": record.iterations,
        "energy_method": ",".join(record.methods),
        "energy_devices": [c.device for c in record.components],
    }
    if record.unit == "inference":
        info["energy_wh_per_1000_inferences"] = finite_number(wh_per_1000(record.per_iteration_gross_joules))
    return info


# -- CodeCarbon CSV ------------------------------------------------------------------------------
def codecarbon_row(record: Record, run_id: str, fingerprint: dict[str, Any]) -> dict[str, Any]:
    """One record as a CodeCarbon emissions row: energies are gross device energy x PUE, as
    CodeCarbon's are, so ``emissions = energy_consumed x intensity``."""
    pue = record.carbon.pue
    energy = {"cpu": 0.0, "gpu": 0.0, "ram": 0.0}
    power = {"cpu": 0.0, "gpu": 0.0, "ram": 0.0}
    for component in record.components:
        kind = _CODECARBON_KIND.get(component.kind, "cpu")
        energy[kind] += component.gross_joules * pue / JOULES_PER_KWH
        if component.window_seconds > 0:
            power[kind] += component.gross_joules * pue / component.window_seconds
    duration = record.duration_seconds
    emissions_kg = record.co2_grams / 1000
    gpus = fingerprint.get("gpus") or []
    return {
        "timestamp": record.timestamp, "project_name": record.name, "run_id": run_id,
        "experiment_id": fingerprint.get("id", ""), "duration": duration, "emissions": emissions_kg,
        "emissions_rate": emissions_kg / duration if duration > 0 else 0.0,
        "cpu_power": power["cpu"], "gpu_power": power["gpu"], "ram_power": power["ram"],
        "cpu_energy": energy["cpu"], "gpu_energy": energy["gpu"], "ram_energy": energy["ram"],
        "energy_consumed": sum(energy.values()), "water_consumed": 0.0,
        "country_name": "", "country_iso_code": record.carbon.country_iso_code or "",  # the name is in the source
        "region": "", "cloud_provider": "", "cloud_region": "", "os": fingerprint.get("os", ""),
        "python_version": fingerprint.get("python", ""), "codecarbon_version": "",
        "cpu_count": fingerprint.get("logical_cpus", ""), "cpu_model": fingerprint.get("cpu_model", ""),
        "gpu_count": len(gpus), "gpu_model": ", ".join(str(g.get("name", "")) for g in gpus),
        "longitude": "", "latitude": "", "ram_total_size": fingerprint.get("memory_gib", ""),
        "tracking_mode": "machine", "cpu_utilization_percent": "", "gpu_utilization_percent": "",
        "ram_utilization_percent": "", "ram_used_gb": "", "on_cloud": "N", "pue": pue, "wue": 0.0,
    }


def write_emissions_csv(report: Report, path: Path) -> str:
    """Append the report's records to a CodeCarbon-style CSV (a new file gets the header); a file
    with other columns is kept as ``.bak`` and started afresh, as CodeCarbon does."""
    with locked(path):  # another session may append to the same file at the same moment
        return _append_csv(report, path)


def _append_csv(report: Report, path: Path) -> str:
    run_id = report.run.run_id if report.run else ""
    fingerprint = report.run.fingerprint if report.run else {}
    existing = ""
    if path.exists():
        existing = path.read_text(encoding="utf-8")
        header = next(csv.reader(io.StringIO(existing)), None)
        if header is not None and list(header) != list(CODECARBON_COLUMNS):
            os.replace(path, path.with_name(path.name + ".bak"))
            existing = ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CODECARBON_COLUMNS, lineterminator="\n")
    if not existing.strip():
        existing = ""
        writer.writeheader()
    elif not existing.endswith("\n"):
        existing += "\n"
    for row in report.rows:
        writer.writerow(codecarbon_row(row.record, run_id, row.record.fingerprint or fingerprint))
    atomic_write_text(path, existing + buffer.getvalue())
    return f"emissions CSV (CodeCarbon columns): {len(report.rows)} rows added to {path}"


# -- Hugging Face model card ---------------------------------------------------------------------
def _hardware_used(record: Record) -> str:
    gpus = [c for c in record.components if c.kind == "gpu"]
    if gpus:
        names = {str(g.get("device")): str(g.get("name", "GPU")) for g in record.fingerprint.get("gpus") or []}
        counted: dict[str, int] = {}
        for component in gpus:
            name = names.get(component.device, component.device)
            counted[name] = counted.get(name, 0) + 1
        return ", ".join(f"{n} x {name}" for name, n in counted.items())
    cpu = record.fingerprint.get("cpu_model") or "CPU"
    return f"{cpu} (CPU only)"


def _yaml(value: Any) -> str:
    """A scalar as YAML reads it (JSON's quoting is valid YAML)."""
    return json.dumps(finite(value))


def model_card_metadata(row: Row) -> dict[str, Any]:
    """A fine-tune row's model-card front matter: ``base_model`` where a hub model was fine-tuned,
    ``co2_eq_emissions`` as the Hub reads it (grams), then pytest-energy's own keys: ``training`` (the
    model trained and from what weights), ``carbon_efficiency`` and ``emissions_reporting`` (the
    reporting-practice class of the block itself). A field the run cannot state truthfully is left out:
    ``training_type`` where the case did not say how it trained, ``geographical_location`` where no
    country was given."""
    record = row.record
    carbon = record.carbon
    methods = ", ".join(f"{c.device} {c.method}" for c in record.components)
    recipe = record.case.fine_tune if record.case is not None else None
    training = recipe.training if recipe is not None else None
    model = record.model
    emissions: dict[str, Any] = {
        "emissions": finite_number(record.co2_grams),
        "source": (f"pytest-energy {record.fingerprint.get('pytest_energy') or ''} measurement ({methods}); "
                   f"{carbon.intensity_g_per_kwh:g} gCO2eq/kWh from {carbon.source}; PUE {carbon.pue:g}"),
        "training_type": (training.type if training is not None else "") or None,
        "geographical_location": carbon.country_iso_code or None,
        "hardware_used": _hardware_used(record),
    }
    emissions = {key: value for key, value in emissions.items() if value is not None}
    practice = reporting_practice(emissions)
    card: dict[str, Any] = {}
    if model is not None and model.source == "hub cache" and training is not None and training.type == "fine-tuning":
        card["base_model"] = model.requested
    card["co2_eq_emissions"] = emissions
    # The model trained, a fallback named as the stand-in it is.
    card["training"] = {"model": model_text(record, detail=True) or (training.model if training else "")
                        or "not stated by the case",
                        "initial_weights": (training.initial_weights if training else "") or "not stated by the case"}
    card["carbon_efficiency"] = {"class": row.carbon_class, "basis": row.carbon_class_basis,
                                 "energy_joules": finite_number(record.total_gross_joules)}
    card["emissions_reporting"] = {"practice": practice.level, "missing": list(practice.missing)}
    return card


def model_card_block(row: Row) -> str:
    """The model-card YAML for one fine-tune row (:func:`model_card_metadata`), with a header naming the
    case and the model trained."""
    record = row.record
    card = model_card_metadata(row)
    lines = [f"# case {json.dumps(record.name)} (FineTuneCase), measured {record.timestamp}",
             f"# model trained: {card['training']['model']} ({card['training']['initial_weights']} initial weights)",
             "# paste into the model card's YAML front matter; the Hub ignores the keys after co2_eq_emissions"]
    for key, value in card.items():
        if not isinstance(value, dict):
            lines.append(f"{key}: {_yaml(value)}")
            continue
        lines.append(f"{key}:")
        lines += [f"  {field}: {_yaml(item)}" for field, item in value.items()]
    return "\n".join(lines) + "\n"


def _file_name(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_.")[:100] or "case"
    return f"{slug}.yaml"


def write_model_cards(report: Report, folder: Path) -> list[str]:
    """One ``<case>.yaml`` per fine-tune row in ``folder``; one line per file written."""
    lines, used = [], set()
    for row in report.rows:
        if not row.is_fine_tune:
            continue
        file_name = _file_name(row.name)
        while file_name in used:  # names that slug alike keep apart
            file_name = file_name[:-5] + "_.yaml"
        used.add(file_name)
        atomic_write_text(folder / file_name, model_card_block(row))
        lines.append(f"model-card co2_eq_emissions for {row.name}: {folder / file_name}")
    return lines
