"""The Redis edge of the decision service.

``keys`` (key names) + ``codecs`` (values): the layout contract shared with audience_sync.
``connect``: URLs -> redis-py clients (plain, TLS, Cluster) and the options read back.
``fastpath``: the decision path's pipelined connections (commands, scripts, pipelines; TLS, Cluster).
``profiles``: ProfileStore (membership and profile reads, audience directory, counter scripts).
``control``: ControlStore (published rulesets, profile samples). ``follow``: pub/sub with polling.
``scripts`` + ``lua/``: the Lua scripts. ``embedded``: a redis-server for the demo and tests.
"""
