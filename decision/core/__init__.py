"""The pure core of a decision: request model, planning, delivery controls, experiments, explanations.

Nothing here does I/O or imports grpc or redis; memberships, counters and the clock come in as arguments.
"""
