"""The measurement benchmark of pytest-energy: noise, detection power, overhead, validity, render time.

Run ``python3 -m bench`` (``--quick`` for a one-minute run, ``--help`` for the options) from the
repository root. It writes ``bench/results/<date>-<device>.json`` and ``.md``; docs/accuracy.md
explains the method and shows the table of this project's machines.
"""

import re
import sys
import time
from typing import Any, Callable


def slug(text: str) -> str:
    """A result file's name part: lower case, runs of other characters as one hyphen."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def step(what: str, action: Callable[[], Any]) -> Any:
    """Run one part, print its time; a failure becomes one line and {"absent": ...}, never a traceback."""
    print(f"bench: {what} ...", file=sys.stderr, flush=True)
    began = time.perf_counter()
    try:
        result = action()
    except Exception as error:
        result = {"absent": f"{type(error).__name__}: {error}"}
        print(f"bench: {what} failed: {result['absent']}", file=sys.stderr, flush=True)
    print(f"bench: {what} took {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)
    return result
