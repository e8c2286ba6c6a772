"""``python -m decision.cli``."""

from decision.cli.entry import decision

raise SystemExit(decision())
