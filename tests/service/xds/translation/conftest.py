"""The full-featured mesh, built once per module for the tests that only read it."""
import pytest
from django.db import transaction
from rest_framework.test import APIClient

from service.tenants.services import create_tenant
from service.xds.policy import load_policy
from tests.service.xds.translation.meshes import full_featured_mesh


@pytest.fixture(scope="module")
def full_policy(django_db_setup, django_db_blocker):
    """The full-featured mesh as load_policy reads it from Postgres, built once
    per module for the tests that only read it, and rolled back afterwards."""
    with django_db_blocker.unblock(), transaction.atomic():
        _, owner_key = create_tenant("acme")
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {owner_key.plaintext}")
        full_featured_mesh(api)
        policy = load_policy("acme", "m1")
        transaction.set_rollback(True)
    return policy
