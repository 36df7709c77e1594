"""Leases: what keeps the objects a running job stored -- but no row names yet -- from gc.

An on-disk index build stores objects long before the index row that names them commits:
with ``engine=ray`` the chunk-text table goes first (the actors read their texts from it), and
the job may run for hours, longer than gc's grace period. A :class:`Lease` is a derived row of
kind ``lease`` naming those objects (``meta.objects``; the first also as its object) with an
expiry (``meta.expires``, Unix seconds), which a thread of the job renews every quarter of the
time to live. gc keeps what a live lease names, like any other row's objects (the module
docstring of :mod:`genreg.service.admin`: the job stores an object, then records it in the
lease, then checks it is still there -- ``ensure_stored``), ignores an expired lease (the
job's process was killed, or its renewals failed for longer than the time to live -- a job
that is alive but stuck keeps renewing) and removes it. A lease whose renewals failed until
it ran out is *lost*: one warning on stderr, and :meth:`Lease.check` raises, so the job
stops instead of failing later on an object gc may have taken. The job
deletes its lease once the rows that name the objects are committed, or when it fails.

A renewal writes the new row before deleting the old one (keys ``lease:<id>:<n>``), so the
objects are never unreferenced in between. Expiry is wall-clock time, compared by whichever
machine runs gc: clocks must agree to well within :data:`TTL`.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from genreg.store.metadata import DerivedStore

LEASE_KIND = "lease"
TTL = 600.0  # seconds a lease lives without a renewal


def expired(meta: Mapping[str, Any] | object, now: float) -> bool:
    """True when a lease row's ``meta`` says it has run out (or says nothing valid)."""
    if not isinstance(meta, Mapping):
        return True
    exp = meta.get("expires")
    return not isinstance(exp, int | float) or exp <= now


class Lease:
    """The objects a job has stored so far, kept by gc while the job runs (see the module
    docstring). :meth:`add` each object right after storing it (then ``ensure_stored`` it);
    :meth:`close` when the rows naming them are committed (or the job failed)."""

    def __init__(self, derived: DerivedStore, scope: str, what: str, *, ttl: float = TTL) -> None:
        self._derived, self._scope, self._what, self.ttl = derived, scope, what, ttl
        self._id = uuid.uuid4().hex
        self._seq = 0
        self._objects: list[str] = []
        self.key: str | None = None  # the current row's key (None: nothing leased yet)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._expires = 0.0  # when the current row runs out (wall clock)
        self.lost = False  # renewals failed until the lease ran out (see check)

    def add(self, *digests: str) -> None:
        """Lease ``digests`` too (stored objects, bare sha256); renews the lease."""
        with self._lock:
            if self._stop.is_set():
                raise RuntimeError("lease closed")
            self.check()
            new = [d for d in digests if d not in self._objects]
            if not new:
                return
            self._objects += new
            self._renew()
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._keep_alive, name=f"genreg-lease-{self._id[:8]}", daemon=True
            )
            self._thread.start()

    def _renew(self) -> None:  # with self._lock held
        self._seq += 1
        key = f"lease:{self._id}:{self._seq}"
        meta = {
            "objects": list(self._objects),
            "expires": (expires := time.time() + self.ttl),
            "what": self._what,
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }
        self._derived.put(
            kind=LEASE_KIND, scope=self._scope, key=key, object_digest=self._objects[0], meta=meta
        )
        old, self.key, self._expires = self.key, key, expires
        if old is not None:  # after the new row: the objects are never unreferenced
            self._derived.delete(old)

    def _keep_alive(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            with self._lock:
                if self._stop.is_set():
                    return
                try:
                    self._renew()
                except Exception as exc:  # a database hiccup: the next tick retries
                    if not self.lost and time.time() >= self._expires:
                        self.lost = True  # gc may now take what it named
                        sys.stderr.write(
                            f"genreg: warning: {self._what} lease ran out, renewals failing "
                            f"({type(exc).__name__}); the job will stop\n"
                        )

    def check(self) -> None:
        """Raise :class:`IntegrityError` when the lease was lost (see the module doc)."""
        if self.lost:
            from genreg.errors import IntegrityError

            raise IntegrityError(
                f"{self._what}: its lease ran out while renewals failed; objects it named may "
                "have been collected -- run the job again"
            )

    def close(self) -> None:
        """Stop renewing and delete the lease row (the objects now stand on their own rows,
        or are left for gc)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            if self.key is not None:
                self._derived.delete(self.key)
                self.key = None

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
