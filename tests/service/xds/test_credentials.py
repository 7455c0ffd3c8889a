"""The pieces of stream admission that need no server: the proxy quota rule,
the registry of open streams, and the kept verifications (their age bound and
their file)."""
import asyncio
import json
import time

import pytest

from service.xds.admission import Elsewhere, ProxyQuotaExceeded, check_room
from service.xds.auth import Credential
from service.xds.credentials import VerifiedCredentials
from service.xds.streams import OpenStreams

TOKEN = Credential("acme", 1, "m1", 10, "ilt", 100)
OTHER = Credential("acme", 1, "m1", 10, "ilt", 101)
KEY = Credential("acme", 1, kind="ilk", id=7)


def test_a_new_proxy_is_refused_at_the_quota_and_a_connected_one_never():
    here = {(10, "a"), (10, "b")}
    check_room((10, "c"), Elsewhere(limit=4, proxies=1, has_node=False), here)  # 3 connected, room for a 4th
    with pytest.raises(ProxyQuotaExceeded, match="max_proxies quota is 3 and 3 proxies are connected"):
        check_room((10, "c"), Elsewhere(limit=3, proxies=1, has_node=False), here)
    check_room((10, "a"), Elsewhere(limit=3, proxies=1, has_node=False), here)  # a second stream of a
    check_room((10, "c"), Elsewhere(limit=1, proxies=5, has_node=True), here)  # c reconnects, though over quota


def test_open_streams_count_proxies_once_and_end_only_the_revoked():
    async def run():
        streams = OpenStreams()
        with streams.hold(TOKEN, (10, "a")) as first, streams.hold(TOKEN, (10, "a")), \
                streams.hold(OTHER, (10, "b")) as other, streams.hold(KEY) as csds:
            assert set(streams.proxies(1)) == {(10, "a"), (10, "b")}
            assert streams.credentials() == {TOKEN, OTHER, KEY}
            assert streams.end_revoked({TOKEN, KEY}) == 3
            assert first.ended.is_set() and first.reason == "the node token has been revoked"
            assert csds.reason == "the API key has been revoked"
            assert not other.ended.is_set()
        assert set(streams.proxies(1)) == set() and streams.credentials() == set()

    asyncio.run(run())


def test_a_verification_older_than_max_age_is_not_honoured(tmp_path):
    path = tmp_path / "kept.json"
    verified = VerifiedCredentials(max_age=3600, path=path)
    verified.looked_up("d1", TOKEN)
    verified.looked_up("d2", OTHER)
    assert verified.confirmed_within("d1", 3600) == TOKEN
    verified.write(verified.unsaved())
    stored = json.loads(path.read_text())
    stored["d2"]["confirmed_at"] = time.time() - 3601  # confirmed before the bound
    path.write_text(json.dumps(stored))

    restarted = VerifiedCredentials(max_age=3600, path=path)
    restarted.load()
    assert restarted.confirmed_within("d1", 3600) == TOKEN
    assert restarted.confirmed_within("d2", 3600) is None
    assert restarted.looked_up_within("d1", 10) == TOKEN  # its lookup was just now


def test_a_re_check_drops_the_revoked_and_keeps_those_looked_up_meanwhile():
    verified = VerifiedCredentials(max_age=3600)
    verified.looked_up("d1", TOKEN)
    verified.looked_up("d2", OTHER)
    checked = verified.credentials()
    verified.looked_up("d3", KEY)  # while the re-check's query ran
    verified.confirm(checked, existing={OTHER})
    assert verified.credentials() == {OTHER, KEY}


def test_an_unreadable_file_is_ignored(tmp_path):
    path = tmp_path / "kept.json"
    path.write_text('{"d1": {"credential": {"tenant": "acme"}}}')
    verified = VerifiedCredentials(max_age=3600, path=path)
    verified.load()
    assert verified.credentials() == set()


def test_a_flood_of_distinct_bad_tokens_is_remembered_within_a_bound(monkeypatch):
    """Each bad secret is remembered (so a storm of one costs one lookup per
    ttl), but a flood of distinct ones within the ttl keeps only the newest."""
    from envoy.config.core.v3 import base_pb2

    from service.xds import auth
    from service.xds.orm import OrmPool

    monkeypatch.setattr(auth, "MAX_UNKNOWN_REMEMBERED", 100)
    orm = OrmPool(1)
    authenticator = auth.Authenticator(orm, VerifiedCredentials(3600, None), ttl=60)
    node = base_pb2.Node(id="tenants/acme/meshes/m1/nodes/n1")

    async def flood():
        for n in range(1000):
            with pytest.raises(auth.AuthError):
                await authenticator.node((("authorization", f"Bearer not-a-token-{n}"),), node)

    try:
        asyncio.run(flood())
    finally:
        orm.close()
    assert authenticator.unknown_remembered() == 100
