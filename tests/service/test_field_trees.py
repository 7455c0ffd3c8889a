"""service.field_trees: a serializer's field tree serves request after
request, never two serializers at once, and always with the context (the
tenant) of the serializer holding it."""
from service.field_trees import LendFieldTrees
from service.mesh.api.serializers import BackendServiceSerializer, HttpRouteSerializer
from service.mesh.models import Mesh
from service.tenants.services import create_tenant
from tests.service.api_base import seed


def in_a_request(work):
    """Run `work` as a view would, inside the middleware's loan."""
    return LendFieldTrees(lambda request: work())(None)


def field_ids(serializer) -> set[int]:
    return {id(field) for field in serializer.fields.values()}


def test_two_serializers_of_one_request_never_share_a_tree(tenant):
    def two():
        first = HttpRouteSerializer(context={"tenant": tenant})
        second = HttpRouteSerializer(context={"tenant": tenant})
        return field_ids(first), field_ids(second)

    first, second = in_a_request(two)
    assert first and not first & second


def test_the_next_request_gets_a_tree_back_pointed_at_its_own_serializer(tenant):
    globex, _ = create_tenant("globex")
    Mesh.objects.create(tenant=tenant, name="m1")
    Mesh.objects.create(tenant=globex, name="m1")
    before = in_a_request(lambda: field_ids(BackendServiceSerializer(context={"tenant": tenant})))

    def resolve_as_globex():
        serializer = BackendServiceSerializer(context={"tenant": globex})
        return field_ids(serializer), serializer.fields["mesh"].to_internal_value("m1")

    after, mesh = in_a_request(resolve_as_globex)
    assert after == before  # the same field objects: the tree was reused
    assert mesh.tenant_id == globex.pk


def test_outside_a_request_every_serializer_builds_its_own(tenant):
    # Both kept alive: a freed tree's ids could be reused by the next one's.
    serializers = [HttpRouteSerializer(context={"tenant": tenant}) for _ in range(2)]
    first, second = (field_ids(serializer) for serializer in serializers)
    assert first and not first & second


def test_a_reused_tree_validates_against_the_new_requests_tenant(api, other_api):
    """Through the API: once acme's writes have returned their trees, globex,
    which has no mesh m1, still cannot reach acme's."""
    seed(api)
    route = {"name": "r1", "meshes": ["m1"], "hostnames": ["r1.example"],
             "rules": [{"action": {"destinations": [{"service_name": "bs-http"}]}}]}
    assert api.post("/api/v1/http-routes", route, format="json").status_code == 201
    response = other_api.post("/api/v1/http-routes", {**route, "hostnames": ["r2.example"]}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "meshes"
