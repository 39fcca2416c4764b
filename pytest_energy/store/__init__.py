"""Storing: the baselines folder, the history of runs (SQLite or PostgreSQL), and the locks and atomic
writes they share. (Importing ``--energy-json`` files into a history, which rebuilds their gate's
judgement, is a command's job: :mod:`pytest_energy.commands.json_import`.)

May import: core, measure (a runner's device kinds).
"""
