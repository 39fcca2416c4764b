"""The ``pytest-energy`` command and what it runs outside a pytest session: the history and baseline
commands, ``import`` (``--energy-json`` files into a history), ``doctor``, ``calibrate``, and the
project's ini file (read and edited).

May import: core, stats, measure, store, cases, judge, report.
"""
