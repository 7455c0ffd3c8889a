"""service.sql: the write path's prebuilt statements give what the ORM would,
both ways, through Django's own cursor."""
import datetime

import pytest
from django.db import IntegrityError, connection, transaction

from service import sql
from service.mesh.models import (
    BackendService, Change, HttpRoute, Mesh, ResourceVersion, Route, RouteDestination, RouteMesh,
)


@pytest.fixture
def mesh(tenant):
    return Mesh.objects.create(tenant=tenant, name="m1", labels={"team": "edge"})


def test_insert_gives_keys_and_stores_what_the_orm_reads_back(tenant, django_assert_num_queries):
    changes = [Change(tenant=tenant, actor="a", action="create", kind="meshes", name=f"m{i}",
                      resources={"meshes/m": str(i)}) for i in range(3)]
    with django_assert_num_queries(1):
        sql.insert(changes)
    assert all(change.pk for change in changes) and len({change.pk for change in changes}) == 3
    stored = Change.objects.get(pk=changes[1].pk)
    assert stored.resources == {"meshes/m": "1"} and stored.name == "m1"
    assert isinstance(stored.created_at, datetime.datetime) and stored.created_at.tzinfo is not None
    assert not changes[0]._state.adding


def test_insert_of_a_proxy_model_writes_its_type(tenant):
    route = HttpRoute(tenant=tenant, name="r", hostnames=["a.example"], rules=[{"action": {}}])
    sql.insert([route])
    assert Route.objects.get(pk=route.pk).type == "http"
    assert HttpRoute.objects.filter(name="r").exists()


def test_insert_with_ignore_conflicts_skips_what_a_unique_index_holds(tenant):
    first = ResourceVersion(tenant=tenant, digest="d1", kind="meshes", name="m", body={"v": 1})
    sql.insert([first], ignore_conflicts=True)
    sql.insert([ResourceVersion(tenant=tenant, digest="d1", kind="meshes", name="m", body={"v": 2})],
               ignore_conflicts=True)
    assert list(ResourceVersion.objects.values_list("body", flat=True)) == [{"v": 1}]


def test_insert_raises_integrity_error_on_a_clash_without_ignore(tenant, mesh):
    with pytest.raises(IntegrityError), transaction.atomic():
        sql.insert([Mesh(tenant=tenant, name="m1")])


def test_insert_linked_writes_the_row_and_its_links_in_order(tenant, mesh, django_assert_num_queries):
    services = [BackendService.objects.create(tenant=tenant, mesh=mesh, name=f"bs{i}") for i in range(3)]
    other = Mesh.objects.create(tenant=tenant, name="m2")
    route = HttpRoute(tenant=tenant, name="r", hostnames=["a.example"], rules=[])
    ordered = [services[2], services[0], services[1]]
    with django_assert_num_queries(1 if connection.vendor == "postgresql" else 3):
        sql.insert_linked(route, {"meshes": [other, mesh], "destinations": ordered})
    assert route.pk and not route._state.adding
    stored = Route.objects.get(pk=route.pk)
    assert stored.name == "r" and stored.type == "http"
    links = lambda through, column: list(  # noqa: E731
        through.objects.filter(route=stored).order_by("id").values_list(column, flat=True))
    assert links(RouteMesh, "mesh_id") == [other.pk, mesh.pk]
    assert links(RouteDestination, "backend_service_id") == [service.pk for service in ordered]
    sql.insert_linked(HttpRoute(tenant=tenant, name="bare", hostnames=[], rules=[]), {"meshes": [], "destinations": []})
    assert not Route.objects.get(name="bare").meshes.exists()


def test_insert_linked_raises_integrity_error_on_a_clash_and_links_nothing(tenant, mesh):
    sql.insert([HttpRoute(tenant=tenant, name="r", hostnames=[], rules=[])])
    with pytest.raises(IntegrityError), transaction.atomic():
        sql.insert_linked(HttpRoute(tenant=tenant, name="r", hostnames=[], rules=[]), {"meshes": [mesh]})
    assert not mesh.routes.exists()


def test_select_both_reads_two_models_in_one_statement(tenant, mesh, django_assert_num_queries):
    other = Mesh.objects.create(tenant=tenant, name="m2")
    services = [BackendService.objects.create(tenant=tenant, mesh=mesh, name=f"bs{i}") for i in range(3)]
    meshes_where, meshes_params = sql.among("name", ["m1", "m2", "missing"])
    with django_assert_num_queries(1):
        meshes, found = sql.select_both(Mesh, f"tenant_id = %s AND {meshes_where}", [tenant.pk, *meshes_params],
                                        BackendService, "tenant_id = %s AND name IN (%s, %s)",
                                        [tenant.pk, "bs0", "bs2"])
    assert sorted(meshes, key=lambda m: m.pk) == [mesh, other]
    assert meshes[0].labels == Mesh.objects.get(pk=meshes[0].pk).labels
    assert sorted(found, key=lambda s: s.pk) == [services[0], services[2]]
    assert found[0].protocol == "HTTP" and not found[0]._state.adding
    nothing, params = sql.among("name", [])
    assert sql.select_both(Mesh, nothing, params, BackendService, "tenant_id = %s", [tenant.pk])[0] == []


def test_insert_new_then_update_runs_as_one_statement_where_it_can(tenant, mesh, django_assert_num_queries):
    versions = [ResourceVersion(tenant=tenant, digest=d, kind="meshes", name="m1", body={"d": d}) for d in ("d1", "d2")]
    sql.insert([versions[0]], ignore_conflicts=True)
    with django_assert_num_queries(1 if connection.vendor == "postgresql" else 2):
        updated = sql.InsertNewThenUpdate(versions, Mesh, "version = %s", "id = %s", ["d2", mesh.pk]).run()
    assert updated == 1 and Mesh.objects.get(pk=mesh.pk).version == "d2"
    # d1 was there already and is kept as it was; d2 is new.
    assert dict(ResourceVersion.objects.values_list("digest", "body")) == {"d1": {"d": "d1"}, "d2": {"d": "d2"}}
    assert not versions[1]._state.adding
    extra = ResourceVersion(tenant=tenant, digest="d3", kind="meshes", name="m1", body={})
    assert sql.InsertNewThenUpdate([extra], Mesh, "version = %s", "id = %s", ["d3", -1]).run() == 0
    assert ResourceVersion.objects.filter(digest="d3").exists()  # the insert does not depend on the update


def test_select_gives_instances_equal_to_the_orms(mesh, django_assert_num_queries):
    with django_assert_num_queries(1):
        (found,) = sql.select(Mesh, "tenant_id = %s AND name = %s", [mesh.tenant_id, "m1"])
    orm = Mesh.objects.get(pk=mesh.pk)
    assert type(found) is Mesh and not found._state.adding
    assert {f.attname: getattr(found, f.attname) for f in Mesh._meta.concrete_fields} == \
        {f.attname: getattr(orm, f.attname) for f in Mesh._meta.concrete_fields}
    assert found.labels == {"team": "edge"}  # JSON decoded, not text
    assert sql.select(Mesh, "tenant_id = %s AND name = %s", [mesh.tenant_id, "nope"]) == []


def test_update_counts_rows_and_returns_them_as_they_are_after(mesh):
    assert sql.update(Mesh, "version = %s", "id = %s", ["v9", mesh.pk]) == 1
    assert sql.update(Mesh, "version = %s", "id = %s", ["v9", -1]) == 0
    (bumped,) = sql.update(Mesh, "revision = revision + 1", "id = %s", [mesh.pk], returning=True)
    assert (bumped.revision, bumped.version, bumped.labels) == (mesh.revision + 1, "v9", {"team": "edge"})


def test_assignments_write_every_field_but_the_excluded_and_touch_updated_at(mesh):
    before = Mesh.objects.get(pk=mesh.pk).updated_at
    mesh.description, mesh.labels, mesh.interception_port, mesh.version = "edge", {"a": "b"}, 15006, "new"
    assigning, values = sql.assignments(mesh, excluded=("version",))
    assert sql.update(Mesh, assigning, "id = %s", [*values, mesh.pk]) == 1
    stored = Mesh.objects.get(pk=mesh.pk)
    assert (stored.description, stored.labels, stored.interception_port) == ("edge", {"a": "b"}, 15006)
    assert stored.updated_at > before and stored.created_at == mesh.created_at
    assert stored.version == ""  # excluded


def test_prefetch_leaves_what_prefetch_related_would_with_one_query(tenant, mesh, django_assert_num_queries):
    others = [Mesh.objects.create(tenant=tenant, name=f"m{i}") for i in (3, 2)]
    route = HttpRoute.objects.create(tenant=tenant, name="r", hostnames=["a.example"], rules=[])
    route.meshes.set([others[0], mesh, others[1]])
    HttpRoute.objects.create(tenant=tenant, name="other", hostnames=["b.example"], rules=[]).meshes.set([mesh])
    expected = list(HttpRoute.objects.prefetch_related("meshes").get(pk=route.pk).meshes.all())
    found = HttpRoute.objects.get(pk=route.pk)
    with django_assert_num_queries(1):
        sql.prefetch(found, "meshes")
    with django_assert_num_queries(0):
        meshes = list(found.meshes.all())
    assert meshes == expected and len(meshes) == 3
    assert [m.labels for m in meshes] == [m.labels for m in expected]  # converted as the ORM converts them

