"""The generic API test base: every policy endpoint gets create, read, list,
update and delete; the read-only and role checks; and the proof that another
tenant's object is a 404 on every verb and never listed."""
import pytest

from service.tenants.models import Role, Scope


def seed(api):
    """The objects other resources refer to, created through the API."""
    calls = [
        ("meshes", {"name": "m1"}),
        ("health-checks", {"name": "hc1", "http_health_check": {"port": 8080}}),
        ("endpoint-groups", {"name": "eg1", "locality": {"cloud": "aws", "region": "us-east-1"},
                             "scaler": {"aws_autoscaling_group": {"name": "asg-1", "region": "us-east-1"}},
                             "endpoints": [{"address": "10.0.0.1", "port": 8080}]}),
        ("endpoint-groups", {"name": "eg2", "endpoints": [{"address": "10.0.1.1", "port": 8080}]}),
        ("backend-services", {"name": "bs-http", "mesh": "m1", "backends": [{"endpoint_group": "eg1"}]}),
        ("backend-services", {"name": "bs-http2", "mesh": "m1", "backends": [{"endpoint_group": "eg2"}]}),
        ("backend-services", {"name": "bs-grpc", "mesh": "m1", "protocol": "GRPC"}),
        ("backend-services", {"name": "bs-tcp", "mesh": "m1", "protocol": "TCP"}),
    ]
    for path, body in calls:
        response = api.post(f"/api/v1/{path}", body, format="json")
        assert response.status_code == 201, (path, response.json())


class PolicyAPITests:
    """Subclasses name the collection, a body to create, a partial update and
    the field it changes."""

    path = ""
    create_body: dict = {}
    update_body: dict = {}

    @pytest.fixture
    def seeded(self, api, other_api):
        seed(api)
        seed(other_api)

    def url(self, name=None):
        return f"/api/v1/{self.path}" + (f"/{name}" if name else "")

    def create(self, client):
        response = client.post(self.url(), self.create_body, format="json")
        assert response.status_code == 201, response.json()
        return response

    def test_create_read_list_update_delete(self, api, seeded):
        response = self.create(api)
        created = response.json()
        assert response["ETag"] == f'"{created["etag"]}"'
        name = created["name"]
        for key, value in self.create_body.items():
            if not isinstance(value, (dict, list)):
                assert created[key] == value
        read = api.get(self.url(name))
        assert read.status_code == 200
        assert read["ETag"] == f'"{created["etag"]}"'
        assert name in [item["name"] for item in api.get(self.url()).json()["results"]]
        updated = api.patch(self.url(name), self.update_body, format="json")
        assert updated.status_code == 200, updated.json()
        for key, value in self.update_body.items():
            assert api.get(self.url(name)).json()[key] == updated.json()[key]
        assert updated.json()["etag"] != created["etag"]
        replaced = api.put(self.url(name), self.create_body, format="json")
        assert replaced.status_code == 200, replaced.json()
        assert replaced.json()["etag"] == created["etag"]  # same policy, same content hash
        assert api.delete(self.url(name)).status_code == 204
        assert api.get(self.url(name)).status_code == 404

    def test_read_only_key_cannot_write(self, api, tenant, client_for, seeded):
        name = self.create(api).json()["name"]
        reader = client_for(tenant, role=Role.OWNER, scope=Scope.READ, name="reader")
        assert reader.get(self.url(name)).status_code == 200
        before = api.get(self.url(name)).json()
        assert reader.post(self.url(), {**self.create_body, "name": "other"}, format="json").status_code == 403
        assert reader.patch(self.url(name), self.update_body, format="json").status_code == 403
        assert reader.put(self.url(name), self.create_body, format="json").status_code == 403
        assert reader.delete(self.url(name)).status_code == 403
        assert api.get(self.url(name)).json() == before

    def test_viewer_role_cannot_write(self, api, tenant, client_for, seeded):
        viewer = client_for(tenant, role=Role.VIEWER, scope=Scope.READ_WRITE, name="viewer")
        response = viewer.post(self.url(), self.create_body, format="json")
        assert response.status_code == 403
        assert response.json()["code"] == "permission_denied"
        assert api.get(self.url(self.create_body["name"])).status_code == 404

    def test_another_tenants_object_is_404_on_every_verb(self, api, other_api, seeded):
        name = self.create(other_api).json()["name"]
        before = other_api.get(self.url(name)).json()
        assert api.get(self.url(name)).status_code == 404
        assert api.patch(self.url(name), self.update_body, format="json").status_code == 404
        assert api.put(self.url(name), self.create_body, format="json").status_code == 404
        assert api.delete(self.url(name)).status_code == 404
        assert name not in [item["name"] for item in api.get(self.url()).json()["results"]]
        assert other_api.get(self.url(name)).json() == before
