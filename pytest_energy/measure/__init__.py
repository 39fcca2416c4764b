"""Measuring: the energy sources, the meter's windows and rounds, a GPU's conditions, the reference
workload, the work code does (FLOPs, the model it ran), CO2, the runner's fingerprint and device kinds,
and the ``--energy-top`` listing's windows.

May import: core.
"""
