"""``audience-sync receive``: the HTTP endpoint the orchestrator pushes profile changes to.

Modules: ``payloads`` (a request body -> membership changes, or the first bad field; pure),
``auth`` (bearer tokens, OAuth2 client credentials), ``writer`` (applies the changes of concurrent
requests together, with the delta semantics of ``apply``), ``app`` (the aiohttp application: routes,
status codes, metrics), ``server`` (TLS, signals, graceful shutdown). aiohttp is the optional extra
``receive``.
"""
