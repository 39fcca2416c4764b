"""Storing: the baselines folder, the history of runs (SQLite or PostgreSQL), JSON files imported into
a history, and the locks and atomic writes they share.

May import: core, measure (a runner's device kinds).
"""
