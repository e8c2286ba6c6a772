"""The Redis edge: the key layout (``keys``, the contract shared with audience_sync), connections, profile
reads, the control store and the Lua scripts."""
