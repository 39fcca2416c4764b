"""Statistics with numbers in and numbers out: rank statistics, resampled intervals, change points.

May import: nothing of the package.
"""
