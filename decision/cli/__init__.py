"""The ``decision`` command line: serve, validate, decide, explain, rules, simulate, demo."""
