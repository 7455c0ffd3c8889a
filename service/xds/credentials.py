"""The credentials a replica has verified: re-checked while they are in use,
and kept through a database outage.

Every node token and API key the replica accepts is kept here under a hash of
the secret (never the secret), with what it stands for (auth.Credential), when
it was last looked up, and when the database last confirmed it exists.

- :class:`CredentialCheck` asks the database every ``interval`` seconds which
  of the kept credentials, and of the credentials of open streams, still exist:
  one query per kind for all of them (in chunks of ``CHECK_CHUNK`` ids). Those
  gone (revoked: the row is deleted) are dropped, so they open no new stream,
  and the streams holding them are ended with UNAUTHENTICATED. It needs the
  database only: a notice on a bus that may be away would be a second path,
  not a faster one worth its code at this interval.
- While the database is away, a kept credential confirmed within ``max_age``
  seconds still opens streams (the re-check confirms every kept one each
  interval, so that age is the outage's length). A token revoked while this
  replica cannot reach the database is honoured until it can again, and then
  its streams end at the next re-check.
- Kept credentials are written to a file (``path``), so a replica restarted
  during a database outage still admits the proxies it served. A local file,
  not Redis: it is the one store a replica has when both the database and Redis
  are away, and what it holds is this replica's own; it needs a directory that
  survives a restart of the process (an emptyDir volume survives a container's).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from django.db import DatabaseError

from service.xds.auth import Credential
from service.xds.orm import OrmPool

logger = logging.getLogger("service.xds")

# Credentials kept at most; beyond, those least recently looked up go first.
MAX_KEPT = 20_000
# Ids per query of a re-check.
CHECK_CHUNK = 5_000
# The file is rewritten when a credential comes or goes, else this often (its
# confirmation times may lag by as much: nothing next to max_age).
SAVE_EVERY = 60.0


@dataclass
class Kept:
    credential: Credential
    looked_up_at: float  # wall clock, as are all times here: they outlive a restart
    confirmed_at: float


class VerifiedCredentials:
    """Credentials by the hash of their secret (auth.Authenticator's digest)."""

    def __init__(self, max_age: float, path: Path | None = None):
        self.max_age = max_age
        self.path = path
        self._kept: dict[str, Kept] = {}
        self._changed = False  # since the last save: a credential added or dropped
        self._saved_at = 0.0

    def looked_up_within(self, digest: str, seconds: float) -> Credential | None:
        kept = self._kept.get(digest)
        return kept.credential if kept is not None and time.time() - kept.looked_up_at < seconds else None

    def confirmed_within(self, digest: str, seconds: float) -> Credential | None:
        kept = self._kept.get(digest)
        return kept.credential if kept is not None and time.time() - kept.confirmed_at < seconds else None

    def looked_up(self, digest: str, credential: Credential) -> None:
        now = time.time()
        self._changed = self._changed or digest not in self._kept
        self._kept[digest] = Kept(credential, now, now)

    def credentials(self) -> set[Credential]:
        return {kept.credential for kept in self._kept.values()}

    def confirm(self, checked: set[Credential], existing: set[Credential]) -> None:
        """The outcome of a re-check of ``checked``: those that exist are
        confirmed now, the others dropped (those looked up meanwhile stay)."""
        now = time.time()
        for digest, kept in list(self._kept.items()):
            if kept.credential in existing:
                kept.confirmed_at = now
            elif kept.credential in checked:
                del self._kept[digest]
                self._changed = True
        if len(self._kept) > MAX_KEPT:
            newest = sorted(self._kept.items(), key=lambda item: item[1].looked_up_at)[-MAX_KEPT:]
            self._kept = dict(newest)

    def load(self) -> None:
        """Those a previous run kept, if not older than max_age."""
        if self.path is None:
            return
        try:
            stored = json.loads(self.path.read_text())
            entries = [(digest, Kept(Credential(**entry["credential"]), entry["looked_up_at"],
                                     entry["confirmed_at"])) for digest, entry in stored.items()]
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
            logger.warning("could not read the kept credentials in %s: %s", self.path, error)
            return
        now = time.time()
        self._kept.update((digest, kept) for digest, kept in entries if now - kept.confirmed_at < self.max_age)

    def unsaved(self) -> str | None:
        """What to write to the file, if a credential came or went since the
        last save or the last save is SAVE_EVERY seconds old; else None."""
        if self.path is None or not (self._changed or time.time() - self._saved_at > SAVE_EVERY):
            return None
        self._changed, self._saved_at = False, time.time()
        return json.dumps({digest: {"credential": asdict(kept.credential), "looked_up_at": kept.looked_up_at,
                                    "confirmed_at": kept.confirmed_at} for digest, kept in self._kept.items()})

    def write(self, text: str) -> None:
        """Replace the file with ``text`` (a new file renamed over it: never half written)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_name(self.path.name + ".partial")
            partial.write_text(text)
            os.replace(partial, self.path)
        except OSError as error:
            logger.warning("could not keep verified credentials in %s: %s", self.path, error)


def existing_credentials(credentials: set[Credential]) -> set[Credential]:
    """Which of these credentials still exist in the database (run in the ORM pool)."""
    from service.tenants.services import existing_credential_ids

    ids: dict[str, list[int]] = {}
    for credential in credentials:
        ids.setdefault(credential.kind, []).append(credential.id)
    found = {kind: set() for kind in ids}
    for kind, kind_ids in ids.items():
        for start in range(0, len(kind_ids), CHECK_CHUNK):
            found[kind] |= existing_credential_ids(kind, kind_ids[start:start + CHECK_CHUNK])
    return {credential for credential in credentials if credential.id in found[credential.kind]}


class CredentialCheck:
    """Re-checks the verified credentials and those of open streams every
    ``interval`` seconds, ending the streams of those revoked."""

    def __init__(self, orm: OrmPool, verified: VerifiedCredentials, streams, interval: float):
        self._orm = orm
        self.verified = verified
        self._streams = streams  # streams.OpenStreams
        self.interval = interval
        self._task: asyncio.Task | None = None
        self._database_away = False

    async def start(self) -> None:
        self.verified.load()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._save()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.check()

    async def check(self) -> None:
        in_use = self.verified.credentials() | self._streams.credentials()
        if not in_use:
            return
        try:
            existing = await self._orm.run(existing_credentials, in_use)
        except DatabaseError as error:
            if not self._database_away:
                logger.warning("cannot re-check credentials (database away); open streams keep theirs: %s", error)
            self._database_away = True
            return
        if self._database_away:
            logger.warning("credentials re-checked again")
            self._database_away = False
        self.verified.confirm(in_use, existing)
        ended = self._streams.end_revoked(in_use - existing)
        if ended:
            logger.info("ended %d streams of revoked credentials", ended)
        await self._save()

    async def _save(self) -> None:
        text = self.verified.unsaved()
        if text is not None:
            await asyncio.to_thread(self.verified.write, text)
