"""The change-notice bus: the notice format, the in-process bus, and the Redis bus
against a real Redis (REDIS_URL, else redis://127.0.0.1:6379/0). No database."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid

import pytest
import redis
from django.core.exceptions import ImproperlyConfigured

from service.notices import (
    ChangeNotice,
    InProcessBus,
    NoticeBus,
    NoticeBusError,
    RedisBus,
    get_bus,
    reset_bus,
)

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
WAIT = 5.0  # seconds: the bound on "is delivered"
QUIET = 0.3  # seconds: how long "is not delivered" is watched for


def notice(revision: int = 1, **overrides) -> ChangeNotice:
    fields = dict(
        tenant="acme",
        mesh="prod",
        revision=revision,
        kinds=("http-routes", "endpoint-groups"),
        resources=(("http-routes", "web"), ("endpoint-groups", "web-eu")),
    )
    fields.update(overrides)
    return ChangeNotice(**fields)


class Recorder:
    """A handler that records notices and lets a test wait for a condition on them."""

    def __init__(self) -> None:
        self.notices: list[ChangeNotice] = []
        self._cond = threading.Condition()

    def __call__(self, n: ChangeNotice) -> None:
        with self._cond:
            self.notices.append(n)
            self._cond.notify_all()

    def wait_for(self, predicate, timeout: float = WAIT) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.notices), timeout)

    def wait_for_revision(self, revision: int, timeout: float = WAIT) -> bool:
        return self.wait_for(lambda ns: any(n.revision == revision for n in ns), timeout)


def boom(n: ChangeNotice) -> None:
    raise RuntimeError("handler bug")


# --- the notice -------------------------------------------------------------


@pytest.mark.parametrize(
    "n",
    [
        notice(),
        notice(resources=()),
        notice(revision=0, kinds=()),
        notice(tenant="tenant-ü", mesh='m "quoted" \\ 雪', revision=2**62),
        ChangeNotice("acme", "prod", 7, ("endpoint-health",), (("backend-services", "web"),),
                     (("web", "g1", "10.0.0.1", 8080, "UNHEALTHY"), ("web", "g1", "db.internal", 80, "HEALTHY"))),
    ],
)
def test_json_round_trip_is_exact(n):
    text = n.to_json()
    assert isinstance(text, str)
    back = ChangeNotice.from_json(text)
    assert back == n
    assert type(back.kinds) is tuple and type(back.resources) is tuple
    assert all(type(pair) is tuple for pair in back.resources)
    assert back.to_json() == text


def test_lists_become_tuples_and_notice_is_hashable():
    n = ChangeNotice("acme", "prod", 3, ["http-routes"], [["http-routes", "web"]])
    assert n.kinds == ("http-routes",)
    assert n.resources == (("http-routes", "web"),)
    assert hash(n) == hash(notice(3, kinds=("http-routes",), resources=(("http-routes", "web"),)))


def test_from_json_ignores_unknown_fields():
    text = '{"tenant":"a","mesh":"m","revision":1,"kinds":["x"],"added_later":true}'
    assert ChangeNotice.from_json(text) == ChangeNotice("a", "m", 1, ("x",))


@pytest.mark.parametrize(
    "payload",
    [
        "",
        "not json",
        "[]",
        "null",
        '"a string"',
        '{"mesh":"m","revision":1,"kinds":[]}',  # no tenant
        '{"tenant":"a","mesh":"m","kinds":[]}',  # no revision
        '{"tenant":"a","mesh":"m","revision":1}',  # no kinds
        '{"tenant":1,"mesh":"m","revision":1,"kinds":[]}',
        '{"tenant":"","mesh":"m","revision":1,"kinds":[]}',
        '{"tenant":"a","mesh":"m","revision":"1","kinds":[]}',
        '{"tenant":"a","mesh":"m","revision":true,"kinds":[]}',
        '{"tenant":"a","mesh":"m","revision":1.5,"kinds":[]}',
        '{"tenant":"a","mesh":"m","revision":-1,"kinds":[]}',
        '{"tenant":"a","mesh":"m","revision":1,"kinds":"http-routes"}',
        '{"tenant":"a","mesh":"m","revision":1,"kinds":[1]}',
        '{"tenant":"a","mesh":"m","revision":1,"kinds":[],"resources":[["k"]]}',
        '{"tenant":"a","mesh":"m","revision":1,"kinds":[],"resources":[["k","n","x"]]}',
        '{"tenant":"a","mesh":"m","revision":1,"kinds":[],"resources":[["k",2]]}',
        '{"tenant":"a","mesh":"m","revision":1,"kinds":[],"resources":{"k":"n"}}',
        '{"tenant":"a","mesh":"m","revision":1,"kinds":[],"endpoints":[["s","g","10.0.0.1",80]]}',
        '{"tenant":"a","mesh":"m","revision":1,"kinds":[],"endpoints":[["s","g","10.0.0.1","80","HEALTHY"]]}',
        '{"tenant":"a","mesh":"m","revision":1,"kinds":[],"endpoints":[["s","g","10.0.0.1",80,"SICK"]]}',
        b"\xff\xfe",
    ],
)
def test_from_json_rejects_malformed_input_with_value_error(payload):
    with pytest.raises(ValueError):
        ChangeNotice.from_json(payload)


# --- the in-process bus ------------------------------------------------------


def test_both_buses_implement_the_protocol():
    assert isinstance(InProcessBus(), NoticeBus)
    bus = RedisBus(REDIS_URL)
    try:
        assert isinstance(bus, NoticeBus)
    finally:
        bus.close()


def test_in_process_delivers_to_every_subscriber_and_not_after_close():
    bus = InProcessBus()
    first, second = Recorder(), Recorder()
    sub1 = bus.subscribe(first)
    sub2 = bus.subscribe(second)

    bus.publish(notice(1))
    assert first.notices == [notice(1)]  # synchronous: delivered before publish returns
    assert second.notices == [notice(1)]

    sub1.close()
    sub1.close()  # idempotent
    bus.publish(notice(2))
    assert first.notices == [notice(1)]
    assert second.notices == [notice(1), notice(2)]

    with sub2:
        pass
    bus.publish(notice(3))
    assert second.notices == [notice(1), notice(2)]


def test_in_process_raising_handler_does_not_block_others(caplog):
    bus = InProcessBus()
    before, after = Recorder(), Recorder()
    with bus.subscribe(before), bus.subscribe(boom), bus.subscribe(after):
        with caplog.at_level(logging.ERROR, logger="service.notices"):
            bus.publish(notice(1))
            bus.publish(notice(2))
    assert before.notices == [notice(1), notice(2)]
    assert after.notices == [notice(1), notice(2)]
    assert sum("handler bug" in (r.exc_text or "") for r in caplog.records) == 2


def test_in_process_handler_may_close_its_own_subscription():
    bus = InProcessBus()
    got = []

    def once(n):
        got.append(n)
        sub.close()

    sub = bus.subscribe(once)
    bus.publish(notice(1))
    bus.publish(notice(2))
    assert got == [notice(1)]


def test_in_process_is_thread_safe():
    bus = InProcessBus()
    rec = Recorder()
    with bus.subscribe(rec):
        threads = [
            threading.Thread(target=lambda t=t: [bus.publish(notice(t * 100 + i)) for i in range(100)])
            for t in range(8)
        ]
        churn_stop = threading.Event()

        def churn():  # subscribe/close concurrently with publishing
            while not churn_stop.is_set():
                bus.subscribe(lambda n: None).close()

        churner = threading.Thread(target=churn)
        churner.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        churn_stop.set()
        churner.join()
    assert sorted(n.revision for n in rec.notices) == list(range(800))


def test_publish_rejects_what_is_not_a_notice():
    with pytest.raises(TypeError):
        InProcessBus().publish({"tenant": "acme"})
    with pytest.raises(TypeError):
        InProcessBus().subscribe("not callable")


# --- the Redis bus ----------------------------------------------------------


@pytest.fixture
def redis_client():
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"these tests need a Redis at {REDIS_URL}: {exc}")
    yield client
    client.close()


@pytest.fixture
def channel(redis_client):
    return f"interlock:test-notices:{uuid.uuid4()}"


@pytest.fixture
def make_bus(channel):
    """Separate RedisBus instances on one channel: separate connections, as two processes."""
    buses, subs = [], []

    def make(**kwargs):
        bus = RedisBus(REDIS_URL, channel, **kwargs)
        buses.append(bus)
        original = bus.subscribe

        def subscribe(*args, **kw):
            sub = original(*args, **kw)
            subs.append(sub)
            return sub

        bus.subscribe = subscribe
        return bus

    yield make
    for sub in subs:
        sub.close()
    for bus in buses:
        bus.close()


def test_redis_publish_reaches_a_subscriber_on_another_instance(make_bus):
    subscriber_bus, publisher_bus = make_bus(), make_bus()
    received = threading.Event()
    got = []

    def handler(n):
        got.append((n, threading.current_thread()))
        received.set()

    subscriber_bus.subscribe(handler)
    # subscribe() returned, so the SUBSCRIBE is confirmed: publishing right away is safe.
    publisher_bus.publish(notice(7))
    assert received.wait(WAIT), "notice not delivered within the bound"
    [(n, thread)] = got
    assert n == notice(7)
    assert thread is not threading.main_thread() and thread.daemon


def test_redis_delivers_in_order_to_several_subscribers_despite_a_raising_one(make_bus, caplog):
    bus, publisher = make_bus(), make_bus()
    first, second = Recorder(), Recorder()
    bus.subscribe(first)
    bus.subscribe(boom)
    bus.subscribe(second)
    with caplog.at_level(logging.ERROR, logger="service.notices"):
        for revision in range(1, 21):
            publisher.publish(notice(revision))
        assert first.wait_for(lambda ns: len(ns) == 20)
        assert second.wait_for(lambda ns: len(ns) == 20)
    assert [n.revision for n in first.notices] == list(range(1, 21))
    assert [n.revision for n in second.notices] == list(range(1, 21))
    assert any("handler bug" in (r.exc_text or "") for r in caplog.records)


def test_redis_close_stops_delivery_and_joins_the_thread(make_bus):
    bus = make_bus()
    closed, control = Recorder(), Recorder()
    sub = bus.subscribe(closed)
    bus.subscribe(control)

    bus.publish(notice(1))
    assert closed.wait_for_revision(1) and control.wait_for_revision(1)

    started = time.monotonic()
    sub.close()
    assert time.monotonic() - started < 2.0, "close() is not prompt"
    assert not sub.alive, "close() returned with the subscriber thread still running"
    sub.close()  # idempotent

    bus.publish(notice(2))
    assert control.wait_for_revision(2)  # the publish went out...
    time.sleep(QUIET)
    assert [n.revision for n in closed.notices] == [1]  # ...but not to the closed one


def test_redis_subscription_is_a_context_manager(make_bus):
    bus = make_bus()
    rec = Recorder()
    with bus.subscribe(rec) as sub:
        bus.publish(notice(1))
        assert rec.wait_for_revision(1)
    assert not sub.alive


def test_redis_handler_may_close_its_own_subscription(make_bus):
    bus = make_bus()
    got = []
    done = threading.Event()

    def once(n):
        got.append(n)
        sub.close()
        done.set()

    sub = bus.subscribe(once)
    bus.publish(notice(1))
    assert done.wait(WAIT)
    deadline = time.monotonic() + WAIT
    while sub.alive and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not sub.alive
    bus.publish(notice(2))
    time.sleep(QUIET)
    assert got == [notice(1)]


def test_redis_subscriber_reconnects_after_its_connection_is_killed(make_bus, redis_client, caplog):
    subscriber_bus, publisher_bus = make_bus(), make_bus()
    rec = Recorder()
    reconnected = threading.Event()

    def pubsub_ids():
        return {c["id"] for c in redis_client.client_list(_type="pubsub")}

    before = pubsub_ids()
    sub = subscriber_bus.subscribe(rec, on_reconnect=reconnected.set)
    ours = pubsub_ids() - before
    assert ours, "the subscriber's pub/sub connection is not listed"

    publisher_bus.publish(notice(1))
    assert rec.wait_for_revision(1)

    # CLIENT KILL TYPE pubsub, narrowed to our subscriber's connection so that
    # other users of this Redis are left alone.
    with caplog.at_level(logging.WARNING, logger="service.notices"):
        killed = sum(redis_client.client_kill_filter(_id=i, _type="pubsub") for i in ours)
        assert killed >= 1

        # Notices published while it reconnects are lost (pub/sub is at most
        # once), so keep publishing until one gets through.
        revision, deadline = 2, time.monotonic() + WAIT
        while time.monotonic() < deadline:
            publisher_bus.publish(notice(revision))
            if rec.wait_for(lambda ns: any(n.revision >= 2 for n in ns), timeout=0.1):
                break
            revision += 1

    assert any(n.revision >= 2 for n in rec.notices), "nothing delivered after the kill"
    assert sub.alive
    assert reconnected.wait(WAIT), "on_reconnect was not called"
    assert any("reconnecting" in r.getMessage() for r in caplog.records)
    assert pubsub_ids() - before - ours, "no new pub/sub connection"

    # And it keeps going.
    publisher_bus.publish(notice(1000))
    assert rec.wait_for_revision(1000)


@pytest.fixture
def private_redis():
    """A redis-server of this test's own, which the test may stop and start again."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is part of the test environment (.ci/run starts it)"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"redis://127.0.0.1:{port}/0"
    procs = []

    def start():
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--logfile", ""],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(proc)
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + WAIT
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        client.close()
        return proc

    def stop(proc):
        proc.terminate()
        proc.wait(WAIT)

    start()
    yield url, start, stop, procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_redis_subscriber_survives_a_redis_restart(private_redis, caplog):
    url, start, stop, procs = private_redis
    subscriber_bus, publisher_bus = RedisBus(url, "restart"), RedisBus(url, "restart")
    rec = Recorder()
    reconnected = threading.Event()
    sub = None
    try:
        with caplog.at_level(logging.WARNING, logger="service.notices"):
            sub = subscriber_bus.subscribe(rec, on_reconnect=reconnected.set)
            publisher_bus.publish(notice(1))
            assert rec.wait_for_revision(1)

            stop(procs[-1])
            with pytest.raises(NoticeBusError):
                publisher_bus.publish(notice(2))
            time.sleep(1.0)  # several refused reconnects, with backoff
            assert sub.alive
            start()

            assert reconnected.wait(3 * WAIT), "did not resubscribe after Redis came back"
            publisher_bus.publish(notice(3))
            assert rec.wait_for_revision(3)
        refused = [r for r in caplog.records if "reconnecting in" in r.getMessage()]
        assert len(refused) >= 3
        sub.close()
        assert not sub.alive
    finally:
        if sub is not None:
            sub.close()
        subscriber_bus.close()
        publisher_bus.close()


def test_redis_idle_subscriber_pings_and_stays_connected(make_bus, caplog):
    bus = make_bus(health_check_interval=0.2)
    rec = Recorder()
    reconnected = threading.Event()
    with caplog.at_level(logging.INFO, logger="service.notices"):
        sub = bus.subscribe(rec, on_reconnect=reconnected.set)
        time.sleep(1.0)  # idle for several health-check intervals
        bus.publish(notice(1))
        assert rec.wait_for_revision(1)
    assert sub.alive and not reconnected.is_set()
    assert not [r for r in caplog.records if r.name == "service.notices"]


def test_redis_unresponsive_connection_is_replaced(private_redis, caplog):
    url, *_ = private_redis
    subscriber_bus, publisher_bus = RedisBus(url, "paused", health_check_interval=0.2), RedisBus(url, "paused")
    admin = redis.Redis.from_url(url)
    rec = Recorder()
    reconnected = threading.Event()
    sub = None
    try:
        with caplog.at_level(logging.WARNING, logger="service.notices"):
            sub = subscriber_bus.subscribe(rec, on_reconnect=reconnected.set)
            admin.execute_command("CLIENT", "PAUSE", "1500", "ALL")  # Redis stops answering
            assert reconnected.wait(3 * WAIT)
            publisher_bus.publish(notice(1))
            assert rec.wait_for_revision(1)
        assert any("no reply to PING" in r.getMessage() for r in caplog.records)
    finally:
        if sub is not None:
            sub.close()
        subscriber_bus.close()
        publisher_bus.close()
        admin.close()


def test_redis_malformed_messages_are_skipped(make_bus, redis_client, channel, caplog):
    bus = make_bus()
    rec = Recorder()
    bus.subscribe(rec)
    with caplog.at_level(logging.WARNING, logger="service.notices"):
        for raw in (b"not json", b"\xff\xfe", b'{"tenant": 1}', b"[]"):
            redis_client.publish(channel, raw)
        bus.publish(notice(5))
        assert rec.wait_for_revision(5)
    assert rec.notices == [notice(5)]
    skipped = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert len(skipped) == 4


def test_asyncio_consumer_marshals_onto_its_loop(make_bus):
    bus = make_bus()

    async def consume():
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[ChangeNotice] = asyncio.Queue()
        with bus.subscribe(lambda n: loop.call_soon_threadsafe(queue.put_nowait, n)):
            await asyncio.to_thread(bus.publish, notice(9))
            return await asyncio.wait_for(queue.get(), WAIT)

    assert asyncio.run(consume()) == notice(9)


def test_redis_unreachable_subscribe_and_publish_raise():
    bus = RedisBus("redis://127.0.0.1:1/0", "interlock:unreachable", subscribe_timeout=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(NoticeBusError):
            bus.subscribe(lambda n: None)
        assert time.monotonic() - started < 3.0
        assert not any(t.name == "notices:interlock:unreachable" for t in threading.enumerate())
        with pytest.raises(NoticeBusError):
            bus.publish(notice())
    finally:
        bus.close()


# --- get_bus ------------------------------------------------------------------


@pytest.fixture
def fresh_bus():
    reset_bus()
    yield
    reset_bus()


def test_get_bus_inprocess_is_a_singleton(settings, fresh_bus):
    settings.NOTICE_BUS = "inprocess"
    bus = get_bus()
    assert isinstance(bus, InProcessBus)
    assert get_bus() is bus
    reset_bus()
    assert get_bus() is not bus


def test_get_bus_redis(settings, fresh_bus):
    settings.NOTICE_BUS = "redis"
    settings.REDIS_URL = REDIS_URL
    settings.NOTICE_CHANNEL = "interlock:notices:test-get-bus"
    bus = get_bus()
    assert isinstance(bus, RedisBus)
    assert bus.url == REDIS_URL and bus.channel == "interlock:notices:test-get-bus"
    assert get_bus() is bus


def test_get_bus_is_one_instance_across_threads(settings, fresh_bus):
    settings.NOTICE_BUS = "inprocess"
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(get_bus())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(b) for b in seen}) == 1


@pytest.mark.parametrize("value, url", [("redis", ""), ("kafka", REDIS_URL)])
def test_get_bus_rejects_bad_settings(settings, fresh_bus, value, url):
    settings.NOTICE_BUS = value
    settings.REDIS_URL = url
    with pytest.raises(ImproperlyConfigured):
        get_bus()
