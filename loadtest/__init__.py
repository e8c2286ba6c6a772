"""Load tests and benchmarks for the decision service."""
