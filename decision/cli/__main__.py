"""``python -m decision.cli``."""

from decision.cli.main import main

raise SystemExit(main())
