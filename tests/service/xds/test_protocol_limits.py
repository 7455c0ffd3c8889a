"""What one stream may ask for, as pure state machines: the limits refuse a
request before it changes anything, and the memos every stream shares stay
within their byte bounds whatever the streams name."""
import tracemalloc

import pytest
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest

from service.xds.cache import CacheKey
from service.xds.lru import BoundedLru
from service.xds.protocol import (
    MAX_NAME_LENGTH, MAX_NAMES_PER_REQUEST, MAX_NAMES_PER_STREAM, MAX_NAMES_PER_TYPE, MAX_OUTSTANDING_NONCES,
    MAX_VERSION_LENGTH, Ack, DeltaStream, InvalidRequest, LimitExceeded, SelectionMemo, SotwStream, Subscription,
)
from service.xds.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE, Snapshot
from tests.service.xds.resources import cluster, endpoints, mesh_snapshot

KEY = CacheKey("acme", "m1", "aws", "us-east-1")
SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"


def names(count, prefix="n"):
    return [f"{prefix}{i}" for i in range(count)]


@pytest.fixture(params=["sotw", "delta"])
def protocol(request):
    """(a new stream, a request of it naming resources) for each protocol."""
    if request.param == "sotw":
        return (lambda: SotwStream(KEY, SelectionMemo()),
                lambda type_url, named=(), **f: DiscoveryRequest(type_url=type_url, resource_names=named, **f))
    return (lambda: DeltaStream(KEY, SelectionMemo()),
            lambda type_url, named=(), **f: DeltaDiscoveryRequest(type_url=type_url, resource_names_subscribe=named,
                                                                  **f))


def test_an_unknown_type_url_is_refused_and_keeps_no_state(protocol):
    new_stream, request = protocol
    stream = new_stream()
    for type_url in ("type.googleapis.com/acme.Bogus", "", "x" * 100_000):
        with pytest.raises(InvalidRequest) as refused:
            stream.on_request(request(type_url))
        assert "is not an xDS resource type this server knows" in str(refused.value)
        assert CLUSTER in str(refused.value)
        assert len(str(refused.value)) < 500  # a hostile type URL is quoted in part only
    assert stream.types == {}


def test_a_known_type_we_do_not_serve_is_answered_as_empty(protocol):
    new_stream, request = protocol
    stream = new_stream()
    stream.on_request(request(SECRET, ["tls-cert"]))
    [out] = stream.responses(mesh_snapshot())
    assert out.type_url == SECRET and out.resources == 0


def test_too_many_names_in_one_request_are_refused(protocol):
    new_stream, request = protocol
    stream = new_stream()
    stream.on_request(request(ENDPOINT, names(MAX_NAMES_PER_REQUEST)))  # the limit itself is fine
    with pytest.raises(LimitExceeded) as refused:
        new_stream().on_request(request(ENDPOINT, names(MAX_NAMES_PER_REQUEST + 1)))
    assert f"{MAX_NAMES_PER_REQUEST + 1} resources; at most {MAX_NAMES_PER_REQUEST} per request" in str(refused.value)


def test_too_long_a_name_or_version_is_refused(protocol):
    new_stream, request = protocol
    new_stream().on_request(request(ENDPOINT, ["x" * MAX_NAME_LENGTH]))
    with pytest.raises(InvalidRequest) as refused:
        new_stream().on_request(request(ENDPOINT, ["ok", "x" * (MAX_NAME_LENGTH + 1)]))
    assert f"a resource name of {MAX_NAME_LENGTH + 1} characters; at most {MAX_NAME_LENGTH}" in str(refused.value)


def test_a_sotw_version_or_delta_initial_version_too_long_is_refused():
    with pytest.raises(InvalidRequest, match=f"a version of 257 characters; at most {MAX_VERSION_LENGTH}"):
        SotwStream(KEY, SelectionMemo()).on_request(DiscoveryRequest(type_url=CLUSTER, version_info="v" * 257))
    with pytest.raises(InvalidRequest, match="a version of 257 characters"):
        DeltaStream(KEY, SelectionMemo()).on_request(DeltaDiscoveryRequest(
            type_url=CLUSTER, initial_resource_versions={"a": "v" * 257}))


def test_names_of_all_types_on_one_stream_are_bounded_and_a_refused_request_changes_nothing(protocol):
    new_stream, request = protocol
    stream = new_stream()
    per_type = MAX_NAMES_PER_STREAM // 2
    stream.on_request(request(ENDPOINT, names(per_type, "e")))
    stream.on_request(request(ROUTE, names(per_type, "r")))
    with pytest.raises(LimitExceeded) as refused:
        stream.on_request(request(LISTENER, ["xds:///one.more"]))
    assert f"{MAX_NAMES_PER_STREAM + 1} resource names on one stream; at most {MAX_NAMES_PER_STREAM}" in str(
        refused.value)
    assert set(stream.types) == {ENDPOINT, ROUTE}


def test_delta_names_of_one_type_accumulate_up_to_the_per_type_limit():
    stream = DeltaStream(KEY, SelectionMemo())
    half = MAX_NAMES_PER_TYPE // 2
    stream.on_request(DeltaDiscoveryRequest(type_url=ENDPOINT, resource_names_subscribe=names(half, "a")))
    stream.on_request(DeltaDiscoveryRequest(type_url=ENDPOINT, resource_names_subscribe=names(half, "b")))
    with pytest.raises(LimitExceeded, match=f"{MAX_NAMES_PER_TYPE + 1} resource names of .* at most "
                                            f"{MAX_NAMES_PER_TYPE} per type"):
        stream.on_request(DeltaDiscoveryRequest(type_url=ENDPOINT, resource_names_subscribe=["c"]))
    # Unsubscribing makes room again; unsubscribing names never subscribed costs nothing.
    stream.on_request(DeltaDiscoveryRequest(type_url=ENDPOINT, resource_names_unsubscribe=names(half, "a")))
    stream.on_request(DeltaDiscoveryRequest(type_url=ENDPOINT, resource_names_subscribe=["c"],
                                            resource_names_unsubscribe=names(half, "never")))
    assert stream.types[ENDPOINT].subscribed() == half + 1


def test_delta_initial_versions_count_as_names_of_the_first_request():
    stream = DeltaStream(KEY, SelectionMemo())
    stream.on_request(DeltaDiscoveryRequest(type_url=ROUTE, resource_names_subscribe=names(MAX_NAMES_PER_TYPE)))
    with pytest.raises(LimitExceeded):
        stream.on_request(DeltaDiscoveryRequest(
            type_url=ENDPOINT, initial_resource_versions={n: "v1" for n in names(MAX_NAMES_PER_TYPE, "e")},
            resource_names_subscribe=["one-more"]))
    assert set(stream.types) == {ROUTE}


def test_delta_forgets_the_oldest_unanswered_nonces_past_the_limit():
    stream = DeltaStream(KEY, SelectionMemo())
    stream.on_request(DeltaDiscoveryRequest(type_url=CLUSTER))
    sent = []
    for port in range(MAX_OUTSTANDING_NONCES + 20):  # a change each time, never ACKed
        [out] = stream.responses(Snapshot.of([cluster("a", timeout=port + 1)]))
        sent.append(out)
    assert stream.on_request(DeltaDiscoveryRequest(type_url=CLUSTER, response_nonce=sent[0].nonce)) is None
    assert len(stream.types[CLUSTER].outstanding) == MAX_OUTSTANDING_NONCES
    latest = DeltaDiscoveryResponse.FromString(sent[-1].body)
    assert stream.on_request(DeltaDiscoveryRequest(type_url=CLUSTER, response_nonce=latest.nonce)) == Ack(
        CLUSTER, sent[-1].version, latest.nonce)


def test_the_selection_memo_keeps_no_name_sets_and_stays_within_its_bytes():
    # Finding 2 in miniature: every request names other resources. The memo
    # must not keep the names (before the fix it kept each set as a key).
    memo = SelectionMemo(max_bytes=1 << 20)
    snapshot = Snapshot.of([endpoints(f"svc{i}", *range(8000, 8050)) for i in range(200)])
    tracemalloc.start()
    try:
        for round_ in range(30):
            named = frozenset(f"r{round_}-{i}-".ljust(100, "x") for i in range(5000)) | {f"svc{round_}"}
            memo.select(KEY, snapshot, ENDPOINT, Subscription(names=named))
            del named
        kept, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert kept < 1 << 20, f"{kept / (1 << 20):.1f} MiB kept"
    assert memo.entries.bytes <= 1 << 20 and len(memo.entries) == 30
    whole = Subscription(wildcard=True)
    for version in range(20):  # selections of many snapshots: the byte bound drops the oldest
        memo.select(KEY, Snapshot.of([*snapshot.get(ENDPOINT), cluster("c", version + 1)]), CLUSTER, whole)
        memo.select(KEY, Snapshot.of([*snapshot.get(ENDPOINT), endpoints("x", version)]), ENDPOINT, whole)
    assert memo.entries.bytes <= 1 << 20 and len(memo.entries) < 40


def test_equal_subscriptions_share_one_selection():
    memo = SelectionMemo()
    snapshot = mesh_snapshot("a")
    first = memo.select(KEY, snapshot, ENDPOINT, Subscription(names=frozenset({"a-svc", "b"})))
    again = memo.select(KEY, snapshot, ENDPOINT, Subscription(names=frozenset({"b", "a-svc"})))
    other = memo.select(KEY, snapshot, ENDPOINT, Subscription(names=frozenset({"a-svc"})))
    assert first is again and other is not first
    assert list(first.resources) == ["a-svc"]


def test_bounded_lru_drops_the_least_recently_used_by_entries_and_by_bytes():
    lru = BoundedLru[str](max_entries=3, max_bytes=100)
    for key in "abc":
        lru.put(key, key.upper(), 10)
    assert lru.get("a") == "A"  # now the most recent
    lru.put("d", "D", 10)
    assert lru.get("b") is None and [lru.get(k) for k in "acd"] == ["A", "C", "D"]
    lru.put("e", "E", 85)  # a and c go: d and e weigh 95
    assert lru.bytes == 95 and [lru.get(k) for k in "acde"] == [None, None, "D", "E"]
    lru.put("huge", "H", 101)  # heavier than the whole budget: not kept, nothing dropped for it
    assert lru.get("huge") is None and lru.get("e") == "E"
    lru.put("e", "E2", 5)
    assert lru.bytes == 15 and lru.get("e") == "E2" and len(lru) == 2
