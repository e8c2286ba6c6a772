"""Name patterns of the rule language, shared by the loader's modules."""

from __future__ import annotations

import re

ID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}")
ATTRIBUTE_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,127}")
# Audience ids come from the orchestrator (AEP segment ids are UUIDs): accept
# anything printable without whitespace.
AUDIENCE_PATTERN = re.compile(r"[^\s\x00-\x1f\x7f]{1,256}")
# Profile attribute names (``profile_attributes:``) are those the layout stores: inbound_common.codecs.ATTRIBUTE_NAME.
# Profile attributes join the request's context under this prefix (``profile.tier``) for the rules,
# formulas and templates: a request may not send context names that start with it, nor may a ruleset
# declare or test them as context attributes, so a request can never pass for a profile's value.
PROFILE_SCOPE = "profile."
