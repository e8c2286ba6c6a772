"""The application layer: a decision's round trips around the pure core, feedback events, active rulesets."""
