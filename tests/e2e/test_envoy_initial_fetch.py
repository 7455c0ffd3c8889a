"""An Envoy that cannot get its configuration is not ready and serves
nothing: the bootstrap has Envoy wait for its first clusters and listeners
without a time limit. With Envoy's default initial fetch timeout (15 s for
clusters, then 15 s more for listeners) an Envoy whose stream was refused
went LIVE after about 30 s with no configuration at all."""
import time

import pytest

from tests.e2e.support import create

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Past both of Envoy's default initial fetch timeouts, with a margin.
PAST_THE_DEFAULT_TIMEOUTS = 2 * 15.0 + 3.0


def stat(proxy, name: str) -> int:
    status, body = proxy.admin_get(f"/stats?filter=^{name}$")
    assert status == 200, body
    return int(body.split(":")[1])


def test_envoy_whose_token_is_refused_stays_not_ready_and_one_with_a_valid_token_is_ready(
        api, mesh, node_token, replica, start_envoy):
    revoked = create(api, "node-tokens", {"name": "revoked", "mesh": mesh.name})["token"]
    assert api.delete("/api/v1/node-tokens/revoked").status_code == 204
    valid = node_token(api, mesh.name)

    started = time.monotonic()
    refused = start_envoy(replica, revoked, node="refused")
    accepted = start_envoy(replica, valid, node="accepted")

    assert accepted.wait_ready(timeout=30) == "LIVE"
    time.sleep(max(0.0, started + PAST_THE_DEFAULT_TIMEOUTS - time.monotonic()))
    status, state = refused.admin_get("/ready")
    assert status == 503, state  # still waiting for its clusters (PRE_INITIALIZING), not LIVE
    assert stat(refused, "cluster_manager.cds.update_failure") > 0  # its streams were refused all along
    assert stat(refused, "cluster_manager.cds.init_fetch_timeout") == 0  # and it never gave up waiting
    status, listeners = refused.admin_get("/listeners")
    assert status == 200 and listeners.strip() == ""  # it serves nothing
