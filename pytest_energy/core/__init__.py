"""What every job shares: the record and its JSON document, units and number formats, the settings and
where each came from, energy budgets, the name -> definition registry, the version.

May import: nothing of the package.
"""
