"""The ratings a report gives a record: AI-Energy-Score-style stars for an inference case against its
task's range; for a fine-tune, the carbon-reporting study's two classifications (Castaño et al. 2023): a
carbon-efficiency class from a fixed reference table per task, and the reporting-practice class of a
model card's emissions metadata."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..core.figures import devices_gross_wh_per_1000, per_1000
from ..core.profiles import PROFILES
from ..core.record import Record
from ..core.units import finite_number

CLASSES = "ABCDE"


def is_fine_tune(record: Record) -> bool:
    """A fine-tune case's record."""
    return record.case is not None and record.case.kind == "fine-tune"


def star_rating(value: float, reference_range: tuple[float, float]) -> int:
    """AI Energy Score style: the task's range (lowest, highest energy) cut into five equal bands;
    5 stars for the lowest 20 %, 1 star for the highest; values outside the range get 5 or 1."""
    return 5 - _band(value, reference_range)


def rated_wh_per_1000(record: Record) -> tuple[float | None, str]:
    """What the AI Energy Score rates: gross GPU Wh per 1,000 iterations (all devices where no GPU
    was measured, and then said so)."""
    if record.iterations <= 0:
        return None, "no valid rounds"
    gpus = [c for c in record.components if c.kind == "gpu"]
    used = gpus or record.components
    basis = "gross GPU energy" if gpus else "gross energy of " + ", ".join(c.device for c in used) + " (no GPU)"
    return finite_number(devices_gross_wh_per_1000(used, record.iterations)), basis


def star_band(record: Record) -> tuple[tuple[float, float] | None, str]:
    """The range a case record's stars cut into bands, and where it comes from: under a measurement
    profile (``--energy-profile``) the profile's published band for the task, else the case's own
    ``reference_range``; a profile record with neither says its band is unknown."""
    case = record.case
    if case is None:
        return None, ""
    profile = PROFILES.get(case.profile)
    published = profile.bands.get(case.task) if profile is not None else None
    if published is not None:
        return published, f"{profile.name} band ({profile.source})"  # type: ignore[union-attr]
    if case.reference_range is not None:
        return case.reference_range, "the task range"
    if profile is not None:
        return None, f"{profile.name} stars: unknown (no published band for {case.task} in docs/cases.md)"
    return None, ""


def rating(record: Record) -> tuple[int | None, str]:
    """Stars for a case record whose task has a band (:func:`star_band`: a profile's published band, or
    the case's ``reference_range``, Wh per 1,000, lowest and highest), with a line saying what was rated;
    (None, why) where a profile's band is unknown, (None, "") without any range."""
    reference, where = star_band(record)
    if reference is None:
        return None, where
    value, basis = rated_wh_per_1000(record)
    if value is None:
        return None, f"not rated: reference range {list(reference)!r} or energy unusable"
    try:
        stars = star_rating(value, reference)
    except ValueError as error:
        return None, f"not rated: {error}"
    return stars, (f"{value:.4g} Wh per 1,000 ({basis}) in {where} "
                   f"{reference[0]:.4g}-{reference[1]:.4g} Wh")


# -- carbon-efficiency class ----------------------------------------------------------------------
@dataclass(frozen=True)
class CarbonReference:
    """A task's fixed carbon-efficiency range: grams CO2eq per 1,000 training examples, lowest to highest,
    cut into five equal bands A (lowest 20 %) to E, as the AI Energy Score cuts a task's range into stars."""

    low: float
    high: float
    basis: str  # where the range comes from


def _reference(inference_wh_per_1000: float, model: str) -> CarbonReference:
    """A range from a task's AI Energy Score reference point (H100, batch 1, Wh per 1,000 inferences):
    a training example costs a forward and a backward pass, about 3 inferences' work, at the world-average
    475 gCO2eq/kWh; the range runs from 0 to twice that, so the reference model's fine-tune is mid-C."""
    grams = inference_wh_per_1000 * 3 * 475 / 1000
    return CarbonReference(0.0, 2 * grams, f"{model} at {inference_wh_per_1000:g} Wh per 1,000 inferences "
                                           "(AI Energy Score 2024, H100) x 3 for training, 475 gCO2eq/kWh")


#: The fixed reference table per task, documented in docs/reports.md; a task missing here is not classed.
CARBON_REFERENCES: dict[str, CarbonReference] = {
    "text-classification": _reference(0.22, "distilbert-base-uncased-finetuned-sst-2-english"),
    "summarization": _reference(4.2, "t5-base"),
    "text-generation": _reference(2.3, "gpt2"),
}


def _band(value: float, reference_range: tuple[float, float]) -> int:
    """0 (the lowest fifth of the range, or below it) to 4 (the highest fifth, or above it)."""
    low, high = (float(v) for v in reference_range)
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        raise ValueError(f"reference range {reference_range!r}: expected (lowest, highest) with highest > lowest")
    if not math.isfinite(value):
        raise ValueError(f"energy {value!r}: cannot be rated")
    return min(4, max(0, math.floor((value - low) / (high - low) * 5)))


def carbon_per_1000_examples(record: Record) -> float | None:
    """Grams CO2eq of a fine-tune per 1,000 training examples it saw (None where either is unknown)."""
    examples = record.case.examples_seen if record.case is not None else None
    grams = finite_number(record.co2_grams)
    if not examples or grams is None or grams < 0:
        return None
    return per_1000(grams, examples)


def carbon_efficiency_class(record: Record) -> tuple[str | None, str]:
    """A carbon-efficiency class A (best) to E for a fine-tune record, after Castaño et al. (2023), from
    :data:`CARBON_REFERENCES` for its task: fixed per task, so a class means the same in every report
    and a single fine-tune is classed too. (None, why) where the task has no reference or the record
    lacks its emissions or the examples it trained on."""
    task = record.case.task if record.case is not None else None
    reference = CARBON_REFERENCES.get(str(task))
    if reference is None:
        return None, (f"not classed: no carbon reference for task {task!r} (the table in docs/reports.md has "
                      f"{', '.join(CARBON_REFERENCES)})")
    value = carbon_per_1000_examples(record)
    if value is None:
        return None, "not classed: the record lacks its CO2 figure or the training examples it saw"
    grade = CLASSES[_band(value, (reference.low, reference.high))]
    width = (reference.high - reference.low) / 5
    return grade, (f"{value:.4g} gCO2eq per 1,000 training examples; {task} table: A below {width:.3g}, "
                   f"E from {4 * width:.3g} ({reference.basis})")


# -- reporting practice ---------------------------------------------------------------------------
#: The fields of a model card's ``co2_eq_emissions`` metadata on the Hugging Face Hub, the figure first.
EMISSIONS_FIELDS = ("emissions", "source", "training_type", "geographical_location", "hardware_used")


@dataclass(frozen=True)
class ReportingPractice:
    """How completely a model card reports its emissions: Castaño et al. (2023) class the Hub's models by
    which ``co2_eq_emissions`` fields they fill in. ``level`` is "complete" (the figure and all four
    context fields), "partial" (the figure and some), "minimal" (the figure alone, as the bare number older
    cards carry) or "not reported" (no figure)."""

    level: str
    present: tuple[str, ...]
    missing: tuple[str, ...]

    @property
    def text(self) -> str:
        return (f"{self.level}: {len(self.present)} of {len(EMISSIONS_FIELDS)} co2_eq_emissions fields"
                + (f" (missing {', '.join(self.missing)})" if self.missing else ""))


def reporting_practice(metadata: Any) -> ReportingPractice:
    """The reporting-practice class of a model card's ``co2_eq_emissions`` value: a mapping of the
    Hub's fields, a bare number (the figure alone) or None. A field counts where it holds a value (an
    emissions figure must be a number >= 0)."""
    if not isinstance(metadata, dict):
        metadata = {"emissions": metadata}
    figure = finite_number(metadata.get("emissions"))
    present = tuple(f for f in EMISSIONS_FIELDS
                    if (figure is not None and figure >= 0 if f == "emissions"
                        else metadata.get(f) not in (None, "", [], {})))
    missing = tuple(f for f in EMISSIONS_FIELDS if f not in present)
    if "emissions" not in present:
        level = "not reported"
    else:
        level = {1: "minimal", len(EMISSIONS_FIELDS): "complete"}.get(len(present), "partial")
    return ReportingPractice(level, present, missing)
