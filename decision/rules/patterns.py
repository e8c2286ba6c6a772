"""Name patterns of the rule language, shared by the loader's modules."""

from __future__ import annotations

import re

ID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}")
ATTRIBUTE_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,127}")
# Audience ids come from the orchestrator (AEP segment ids are UUIDs): accept
# anything printable without whitespace.
AUDIENCE_PATTERN = re.compile(r"[^\s\x00-\x1f\x7f]{1,256}")
