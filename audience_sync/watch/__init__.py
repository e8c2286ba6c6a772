"""``audience-sync watch``: apply the export files an orchestrator drops into cloud storage, each once, in order.

naming (pure): the export time and series of a file from its name; record: a file's ledger record; plan
(pure): which files are ready and in which order; storage: listing and fetching through fsspec; ledger: the
lease and the records in Redis; watcher: the poll loop applying files through ``load``/``apply``; service:
health and metrics over HTTP; command: the options.
"""
