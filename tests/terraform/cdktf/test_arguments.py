import pytest

from terraform.cdktf.arguments import DATA_SOURCES, RESOURCES, check_arguments


def test_a_misspelt_nested_argument_is_refused_with_its_path():
    with pytest.raises(TypeError, match=r"interlock_backend_service.backends\[0\]: no argument endpoint_groop"):
        check_arguments(RESOURCES["backend_service"], {"name": "web", "mesh": "shop",
                                                       "backends": [{"endpoint_groop": "x"}]},
                        "interlock_backend_service")


def test_missing_and_read_only_arguments_are_refused():
    with pytest.raises(TypeError, match="interlock_mesh: name required"):
        check_arguments(RESOURCES["mesh"], {"description": "no name"}, "interlock_mesh")
    with pytest.raises(TypeError, match="no argument etag"):
        check_arguments(RESOURCES["mesh"], {"name": "m", "etag": "x"}, "interlock_mesh")


def test_a_whole_route_passes():
    check_arguments(RESOURCES["http_route"], {
        "name": "r", "meshes": ["m"], "hostnames": ["a.example.com"],
        "rules": [{"matches": [{"prefix_match": "/"}], "action": {"destinations": [{"service_name": "s"}]}}],
    }, "interlock_http_route")
    check_arguments(DATA_SOURCES["mesh"], {"name": "m"}, "data.interlock_mesh")
