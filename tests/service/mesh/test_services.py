"""service.mesh.services: the write path's bookkeeping."""
import pytest
from django.db import connection, transaction
from rest_framework.exceptions import PermissionDenied

from service.mesh.models import HttpRoute, Mesh, ResourceVersion, Revision
from service.mesh.services import ChangeSet, stamp


def test_stamp_marks_the_row_and_keeps_its_version(tenant):
    mesh = Mesh.objects.create(tenant=tenant, name="m1")
    digest = stamp(mesh, tenant)
    assert Mesh.objects.get(pk=mesh.pk).version == digest == mesh.version
    assert ResourceVersion.objects.get(tenant=tenant, digest=digest).body["name"] == "m1"
    assert stamp(mesh, tenant) == digest  # the same content: the same version, kept once
    assert ResourceVersion.objects.filter(digest=digest).count() == 1


def test_stamp_refuses_a_row_of_another_tenant(tenant, other_api):
    theirs = Mesh.objects.create(tenant=other_api.tenant, name="m1")
    with pytest.raises(PermissionDenied):
        stamp(theirs, tenant)
    assert Mesh.objects.get(pk=theirs.pk).version == ""


def test_stamp_with_the_whole_row_writes_its_columns_and_version_in_one_statement(tenant, django_assert_num_queries):
    mesh = Mesh.objects.create(tenant=tenant, name="m1")
    stamped_before = Mesh.objects.get(pk=mesh.pk).updated_at
    mesh.description, mesh.labels = "edge", {"team": "a"}
    with django_assert_num_queries(1 if connection.vendor == "postgresql" else 2):
        digest = stamp(mesh, tenant, whole_row=True)
    stored = Mesh.objects.get(pk=mesh.pk)
    assert (stored.description, stored.labels, stored.version) == ("edge", {"team": "a"}, digest)
    assert stored.updated_at > stamped_before
    assert ResourceVersion.objects.get(digest=digest).body["description"] == "edge"


def test_stamp_with_the_whole_row_writes_nothing_of_another_tenant(tenant, other_api):
    theirs = Mesh.objects.create(tenant=other_api.tenant, name="m1")
    theirs.description = "taken over"
    with pytest.raises(PermissionDenied):
        stamp(theirs, tenant, whole_row=True)
    assert Mesh.objects.get(pk=theirs.pk).description == ""


def test_a_change_whose_mark_rides_in_the_revision_bump_refuses_another_tenants_row(tenant, other_api):
    """The mark of a lone route rides in its mesh's revision bump; the
    re-check it carries still refuses a row outside the change's tenant,
    and the whole statement (the bump, the revision) goes with it."""
    theirs = other_api.tenant
    mesh = Mesh.objects.create(tenant=theirs, name="m1")
    route = HttpRoute.objects.create(tenant=theirs, name="r1", hostnames=["r1.example"], rules=[])
    route.meshes.add(mesh)
    changes = ChangeSet(tenant, "test", "update", "http-routes/r1", lone=True)
    changes.saved(route, {mesh.pk})
    assert changes.mark is not None
    with pytest.raises(PermissionDenied), transaction.atomic():
        changes.commit()
    assert HttpRoute.objects.get(pk=route.pk).version == ""
    assert Mesh.objects.get(pk=mesh.pk).revision == 0 and not Revision.objects.exists()
