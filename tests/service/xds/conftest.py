"""A real replica on loopback (its own event loop in a thread, as in
`interlock dev`), real gRPC clients, and the proxies API to look at the result."""
import queue
import threading
import time

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from service.xds.replica import ReplicaConfig, ReplicaThread
from tests.service.xds.resources import mesh_snapshot


class HandTranslations:
    """What the replica's sync serves per mesh, set by the test: snapshots built
    by hand stand in for translation, the rest of the path (notices, sync,
    cache, streams) is the real one."""

    def __init__(self):
        self.snapshots = {}

    def refresh(self, tenant, mesh, previous):
        return self.snapshots.get((tenant, mesh))

    def snapshot(self, translation, key):
        return translation

    def readdress(self, translation):
        return None  # no host names to look up again


@pytest.fixture
def hand():
    hand = HandTranslations()
    hand.snapshots[("acme", "m1")] = mesh_snapshot("a")
    return hand


@pytest.fixture
def start_replica(hand):
    started = []

    def start(name="r1", **config):
        thread = ReplicaThread(ReplicaConfig(port=0, replica=name, **config),
                               sync_options={"refresh": hand.refresh, "snapshot": hand.snapshot,
                                                             "readdress": hand.readdress})
        replica = thread.start()
        started.append(thread)
        return replica

    yield start
    for thread in started:
        thread.stop()


@pytest.fixture
def replica(start_replica):
    return start_replica()


@pytest.fixture
def translating_replica():
    """A replica that translates the stored policy (no hand-made snapshots)."""
    thread = ReplicaThread(ReplicaConfig(port=0, replica="real"))
    replica = thread.start()
    yield replica
    thread.stop()


@pytest.fixture
def channels():
    opened = []

    def open_channel(replica, credentials=None):
        target = f"127.0.0.1:{replica.port}"
        channel = grpc.secure_channel(target, credentials) if credentials else grpc.insecure_channel(target)
        opened.append(channel)
        return channel

    yield open_channel
    for channel in opened:
        channel.close()


def node(name="n1", tenant="acme", mesh="m1", region="us-east-1", zone="us-east-1a", cloud="aws", agent="envoy",
         token=None):
    message = base_pb2.Node(id=f"tenants/{tenant}/meshes/{mesh}/nodes/{name}", user_agent_name=agent,
                            user_agent_version="1.40.0")
    message.locality.region, message.locality.zone = region, zone
    message.metadata.fields["cloud"].string_value = cloud
    if token:
        message.metadata.fields["interlock_token"].string_value = token
    return message


class Stream:
    """A bidirectional stream driven from the test: send() requests, recv() responses."""

    def __init__(self, method, metadata=()):
        self._requests = queue.Queue()
        self._responses = queue.Queue()
        self.call = method(iter(self._requests.get, None), metadata=metadata)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        try:
            for response in self.call:
                self._responses.put(response)
        except grpc.RpcError as error:
            self._responses.put(error)

    def send(self, request):
        self._requests.put(request)
        return self

    def recv(self, timeout=10.0):
        item = self._responses.get(timeout=timeout)
        if isinstance(item, Exception):
            raise item
        return item

    def nothing_within(self, seconds):
        try:
            item = self._responses.get(timeout=seconds)
        except queue.Empty:
            return True
        raise AssertionError(f"expected nothing, got {item}")

    def close(self):
        self._requests.put(None)
        self.call.cancel()


@pytest.fixture
def streams():
    opened = []

    def open_stream(channel, token=None, delta=False, metadata=None):
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        method = stub.DeltaAggregatedResources if delta else stub.StreamAggregatedResources
        if metadata is None:
            metadata = (("authorization", f"Bearer {token}"),) if token else ()
        stream = Stream(method, metadata)
        opened.append(stream)
        return stream

    yield open_stream
    for stream in opened:
        stream.close()


def sotw_request(type_url, node_=None, names=(), version="", nonce="", error=None):
    request = discovery_pb2.DiscoveryRequest(type_url=type_url, resource_names=list(names), version_info=version,
                                             response_nonce=nonce)
    if node_ is not None:
        request.node.CopyFrom(node_)
    if error:
        request.error_detail.message = error
        request.error_detail.code = 3
    return request


@pytest.fixture
def mesh(api):
    response = api.post("/api/v1/meshes", {"name": "m1"}, format="json")
    assert response.status_code == 201, response.json()
    return "m1"


@pytest.fixture
def token(api, mesh):
    response = api.post("/api/v1/node-tokens", {"name": "tok1", "mesh": mesh}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["token"]


def eventually(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {check}")
        time.sleep(0.05)
