"""Judging: the statistics of a verdict and its types (``Status``, ``Verdict``, ``Judgement``), the
gate that joins records, baselines and budgets into one judgement, and the gate's simulation.

May import: core, stats, measure, store, cases (the quality metrics' registry).
"""
