"""The watcher's state in Redis: one record per file it saw, and the lease that lets one watcher apply files.

The ledger (``KeySpace.watch_ledger``) maps each object path to a JSON record: the version applied or
refused (ETag and size), the outcome and why. A file is done when its record has its current version
and a final outcome (``applied``, ``refused``, ``superseded``); any other file is applied (again):
new, rewritten (another ETag or size), or left ``applying`` by a watcher that died or lost its lease.
A final record is never replaced by one that is not final for the same version (the script checks): a
snapshot's cutover records its files ``applied`` in Redis, and a watcher that then gets no reply (a
timeout) or a stop must not record them ``failed`` or ``interrupted`` and so load the snapshot again.

The lease (``KeySpace.watch_lease``) is a key with a TTL holding ``<token> <owner>``; each acquisition
takes the next token (``watch_fence``). Every ledger write and every cutover of a watcher is made by a
script that checks the lease still holds its value: a watcher that lost it (paused longer than the TTL,
cut off from Redis) writes nothing any more, and its snapshot is never switched in.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from audience_sync.store import CutoverGuard, StoreFailure, SyncStore
from audience_sync.watch.record import FINAL, Record

log = logging.getLogger("audience_sync.watch")


class LeaseLost(Exception):
    """The watcher no longer holds its lease: what it was applying is abandoned."""


class Lease:
    """One watcher name's lease, kept alive by a thread while held.

    ``on_lost`` runs (in the renewing thread) when a renewal finds the lease taken, or when no renewal
    succeeded for a whole TTL (Redis unreachable): from then on the watcher must not write.
    """

    def __init__(
        self,
        store: SyncStore,
        name: str,
        owner: str,
        *,
        ttl: float,
        on_lost: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.key = store.keys.watch_lease(name)
        self.fence_key = store.keys.watch_fence(name)
        self.ledger_key = store.keys.watch_ledger(name)
        self.owner = owner
        self.ttl = ttl
        self.on_lost = on_lost
        self.clock = clock
        self.value = ""  # '<token> <owner>' while held
        self.holder = ""  # who holds it when we do not
        self._valid_until = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))

    @property
    def token(self) -> int:
        return int(self.value.split(" ", 1)[0]) if self.value else 0

    @property
    def held(self) -> bool:
        with self._lock:
            return bool(self.value) and self.clock() < self._valid_until

    def acquire(self) -> bool:
        """Take the lease if free (then keep it alive until released or lost)."""
        if self.held:
            return True
        started = self.clock()
        taken, value = self.store.lease_acquire(self.key, self.fence_key, self.owner, self.ttl_ms)
        if not taken:
            self.holder = value
            return False
        with self._lock:
            self.value, self._valid_until, self.holder = value, started + self.ttl, ""
        self._stop.clear()
        self._thread = threading.Thread(target=self._keep, name="watch-lease", daemon=True)
        self._thread.start()
        return True

    def _keep(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            value = self.value
            if not value:
                return
            started = self.clock()
            try:
                still = self.store.lease_renew(self.key, value, self.ttl_ms)
            except StoreFailure as exc:  # Redis errors and timeouts: the lease runs out unless renewed in time
                log.warning("lease renewal failed: %s", exc)
                if self.clock() < self._valid_until:
                    continue
                still = False
            if still:
                with self._lock:
                    if self.value == value:
                        self._valid_until = started + self.ttl
                continue
            self._lose(value)
            return

    def _lose(self, value: str) -> None:
        with self._lock:
            if self.value != value:
                return
            self.value, self._valid_until = "", 0.0
        log.warning("lease lost (%s): whatever it was applying is abandoned", value)
        self.on_lost()

    def release(self) -> None:
        """Give the lease up (another watcher takes over at once)."""
        value = self.value
        self._stop.set()
        with self._lock:
            self.value, self._valid_until = "", 0.0
        if value:
            try:
                self.store.lease_release(self.key, value)
            except StoreFailure as exc:
                log.warning("could not release the lease (it expires by itself): %s", exc)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
            self._thread = None

    # -- the ledger, fenced by the lease ------------------------------------------------
    def read(self) -> dict[str, Record]:
        return {path: Record.decode(raw) for path, raw in self.store.ledger_read(self.ledger_key).items()}

    def write(self, records: Mapping[str, Record]) -> set[str]:
        """Record files under the lease; LeaseLost if it is no longer ours. Returns the paths whose record was
        kept: a record that is not final never replaces a final one of the same version (WATCH_RECORD)."""
        value = self.value
        pairs = [(path, record.encode()) for path, record in records.items()]
        held, kept = False, list[str]()
        if value:
            held, kept = self.store.ledger_write(self.key, self.ledger_key, value, pairs, sorted(FINAL))
        if not held:
            if value:
                self._lose(value)
            raise LeaseLost(f"lease {value or '(none)'} no longer held")
        return set(kept)

    def forget(self, versions: Mapping[str, str]) -> None:
        """Drop the records of files gone from the storage (path -> the version recorded final); LeaseLost if
        the lease is no longer ours."""
        value = self.value
        if not value or not self.store.ledger_forget(self.key, self.ledger_key, value, versions, sorted(FINAL)):
            if value:
                self._lose(value)
            raise LeaseLost(f"lease {value or '(none)'} no longer held")

    def guard(self, records: Mapping[str, Record]) -> CutoverGuard:
        """For a snapshot's cutover: switched in only under this lease, recording ``records`` with it."""
        return CutoverGuard(self.key, self.ledger_key, self.value, [(p, r.encode()) for p, r in records.items()])
