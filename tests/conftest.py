import uuid

import pytest
from rest_framework.test import APIClient

from service.notices import reset_bus
from service.tenants.models import Role, Scope
from service.tenants.services import create_tenant, issue_api_key


class TenantClient(APIClient):
    """An API client that carries one API key of one tenant."""

    def __init__(self, tenant, key):
        super().__init__()
        self.tenant = tenant
        self.key = key
        self.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")


@pytest.fixture(autouse=True)
def _fresh_notice_bus(settings):
    # A channel of this test's own: concurrent test runs share the Redis server.
    settings.NOTICE_CHANNEL = f"interlock-test:{uuid.uuid4().hex}"
    reset_bus()
    yield
    reset_bus()


@pytest.fixture
def tenant(db):
    tenant, _ = create_tenant("acme")
    return tenant


@pytest.fixture
def client_for():
    def make(tenant, role=Role.OWNER, scope=Scope.READ_WRITE, name=None):
        issued = issue_api_key(tenant, name or f"{role}-{scope}", role=role, scope=scope)
        return TenantClient(tenant, issued.plaintext)

    return make


@pytest.fixture
def api(tenant, client_for):
    return client_for(tenant)


@pytest.fixture
def other_api(db, client_for):
    other, _ = create_tenant("globex")
    return client_for(other)


@pytest.fixture
def private_postgres():
    """A Postgres server of this test's own, started; stop or freeze it at will."""
    from tests.private_engines import PrivatePostgres

    engine = PrivatePostgres()
    try:
        yield engine.start()
    finally:
        engine.remove()


@pytest.fixture
def private_redis():
    """A Redis server of this test's own, started; stop or freeze it at will."""
    from tests.private_engines import PrivateRedis

    engine = PrivateRedis()
    try:
        yield engine.start()
    finally:
        engine.remove()
