"""The regression gate: records against baselines, turned into a judgement the session acts on."""

from __future__ import annotations

from dataclasses import dataclass, field

from .verdict import Verdict


@dataclass
class Judgement:
    """Everything the gate decided for one session, computed once and read by stores and reports."""

    verdicts: list[Verdict] = field(default_factory=list)  # per record name and metric
    baseline_set: str = "default"
    fingerprint_id: str = ""
    new: list[str] = field(default_factory=list)  # record names with no baseline yet
    errors: list[str] = field(default_factory=list)  # one line per unreadable baseline file
    gate_failed: bool = False
    summary: list[str] = field(default_factory=list)  # lines naming each regression and its size
