"""Rules: the YAML language, its validation, and its compilation to durable_rules.

Everything in this package is pure: no I/O but reading the ruleset file in
``loader.load_file``, and membership is always passed in.
"""
