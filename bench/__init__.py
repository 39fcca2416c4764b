"""The measurement benchmark of pytest-energy: noise, detection power, overhead, validity, render time.

Run ``python3 -m bench`` (``--quick`` for a one-minute run, ``--help`` for the options) from the
repository root. It writes ``bench/results/<date>-<device>.json`` and ``.md``; docs/accuracy.md
explains the method and shows the table of this project's machines.
"""

import re


def slug(text: str) -> str:
    """A result file's name part: lower case, runs of other characters as one hyphen."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
