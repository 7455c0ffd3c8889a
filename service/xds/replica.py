"""One xDS replica: the cache, the policy sync feeding it, the proxy recorder
and the stream server, started and stopped together (`interlock xds`, and
inside `interlock dev`)."""
from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from service.xds.auth import Authenticator
from service.xds.cache import SnapshotCache
from service.xds.credentials import CredentialCheck, VerifiedCredentials
from service.xds.load import get_load_store
from service.xds.orm import OrmPool
from service.xds.records import Recorder
from service.xds.server import Callbacks, XdsServer
from service.xds.sync import PolicySync
from service.xds.untrusted import REPLICA_LENGTH

logger = logging.getLogger("service.xds")


@dataclass(frozen=True)
class ReplicaConfig:
    host: str = "127.0.0.1"
    port: int = 18000
    tls_cert: str = ""
    tls_key: str = ""
    replica: str = ""  # unique among replicas; default <hostname>:<port>/<unique per run>
    orm_threads: int = 4
    # Where verified credentials are kept for a restart during a database
    # outage (credentials.py); empty: in memory only.
    credentials_file: str = ""

    def replica_id(self) -> str:
        """The id given, or a new one: two replicas on one host and port (or
        one restarted) never share an id, so none takes another's proxies for
        its own previous run's (the proxies of a run that died are marked
        disconnected by the sweep, records.py)."""
        if self.replica:
            return self.replica
        unique = f":{self.port}/{uuid.uuid4().hex[:12]}"
        return socket.gethostname()[:REPLICA_LENGTH - len(unique)] + unique

    def tls(self) -> tuple[bytes, bytes] | None:
        if not self.tls_cert and not self.tls_key:
            return None
        if not (self.tls_cert and self.tls_key):
            raise ValueError("TLS needs both --tls-cert and --tls-key")
        return Path(self.tls_cert).read_bytes(), Path(self.tls_key).read_bytes()


class Replica:
    def __init__(self, config: ReplicaConfig, *, bus=None, callbacks: Callbacks | None = None, sync_options=None):
        self.config = config
        self.id = config.replica_id()
        self.cache = SnapshotCache()
        self.orm = OrmPool(config.orm_threads)
        self.recorder = Recorder(self.orm, self.id)
        sync_options = {"catch_up_every": settings.XDS_CATCH_UP_SEC, "readdress_every": settings.XDS_DNS_REFRESH_SEC,
                        **(sync_options or {})}
        self.sync = PolicySync(self.cache, self.orm, **sync_options)
        verified = VerifiedCredentials(settings.XDS_VERIFIED_CREDENTIAL_MAX_AGE_SEC,
                                       Path(config.credentials_file) if config.credentials_file else None)
        self.server = XdsServer(self.cache, orm=self.orm, authenticator=Authenticator(self.orm, verified),
                                recorder=self.recorder, loads=get_load_store(), replica=self.id,
                                callbacks=callbacks)
        self.credentials = CredentialCheck(self.orm, verified, self.server.open_streams,
                                           settings.XDS_CREDENTIAL_RECHECK_SEC)
        self._bus = bus
        self.port = 0

    async def start(self) -> int:
        from service.notices import get_bus

        tls = self.config.tls()
        # The port first: a replica that cannot have it must stop before its
        # recorder ends the streams a previous run of its id left, which may be
        # the live streams of the replica that holds the port.
        self.port = self.server.listen(self.config.host, self.config.port, tls)
        await self.recorder.start()
        await self.credentials.start()
        await self.sync.start(self._bus or get_bus())
        await self.server.start()
        logger.warning("xDS replica %s listening on %s:%d%s", self.id, self.config.host, self.port,
                       " (TLS)" if tls else "")
        return self.port

    async def stop(self, grace: float = 1.0) -> None:
        await self.server.stop(grace)
        await self.credentials.stop()
        await self.sync.stop()
        await self.recorder.stop()
        self.orm.close()


async def serve(config: ReplicaConfig, stop: asyncio.Event | None = None, started=None, **options) -> None:
    """Run a replica until ``stop`` is set (or SIGINT/SIGTERM in the main thread)."""
    stop = stop or asyncio.Event()
    replica = Replica(config, **options)
    await replica.start()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    if started is not None:
        started(replica)
    try:
        await stop.wait()
    finally:
        await replica.stop()


def run(config: ReplicaConfig) -> int:
    asyncio.run(serve(config))
    return 0


class ReplicaThread:
    """A replica on its own event loop in a thread (for `interlock dev`)."""

    def __init__(self, config: ReplicaConfig, **options):
        self.config = config
        self.options = options
        self.replica: Replica | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="xds-replica", daemon=True)

    def start(self, timeout: float = 30.0) -> Replica:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the xDS replica did not start in time")
        if self._error is not None:
            raise self._error
        return self.replica

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await serve(self.config, self._stop, started=self._started, **self.options)
        except BaseException as error:  # reported to start(); the thread ends
            self._error = error
            self._ready.set()

    def _started(self, replica: Replica) -> None:
        self.replica = replica
        self._ready.set()
