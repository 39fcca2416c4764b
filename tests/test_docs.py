"""The docs are part of the interface: the options table and the record schema must say what the code does."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pytest_energy.core.config import OPTIONS
from pytest_energy.core.record import Record

DOCS = Path(__file__).resolve().parent.parent / "docs"
OPTIONS_TABLE = (DOCS / "options.md").read_text(encoding="utf-8")
SCHEMA = (DOCS / "record.md").read_text(encoding="utf-8")


def test_every_option_has_its_row_with_the_real_default_and_help() -> None:
    missing = []
    for option in OPTIONS:
        default = "—" if option.default is None else str(option.default)
        row = f"| `{option.cli}` | `{option.ini}` | `{option.env}` | {default} | {option.help} |"
        if row not in OPTIONS_TABLE:
            missing.append(row)
    assert missing == []


def test_record_schema_names_every_record_field() -> None:
    absent = [f.name for f in dataclasses.fields(Record) if f'"{f.name}"' not in SCHEMA]
    assert absent == []
    assert '"form": "call" | "block" | "case" | "test"' in SCHEMA
