"""service.mesh.services: the write path's bookkeeping."""
import pytest
from rest_framework.exceptions import PermissionDenied

from service.mesh.models import Mesh, ResourceVersion
from service.mesh.services import stamp


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
