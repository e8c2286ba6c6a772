"""``python -m audience_sync.cli``."""

from audience_sync.cli.main import main

raise SystemExit(main())
