"""A health-checked backend service written through the API, for the health tests."""
from tests.e2e.support import create


def checked_service(api, endpoints: list[tuple[str, int]], *, port: int, name: str = "web", mesh: str = "m1",
                    interval: float = 1, thresholds: tuple[int, int] = (2, 2), regions: tuple[str, ...] = ()):
    """A mesh, a TCP health check on `port`, an endpoint group of `endpoints`
    and a backend service using both; returns the check's and group's names."""
    if api.get(f"/api/v1/meshes/{mesh}").status_code == 404:
        create(api, "meshes", {"name": mesh})
    healthy, unhealthy = thresholds
    create(api, "health-checks", {"name": f"{name}-check", "check_interval_sec": interval, "timeout_sec": 1,
                                  "healthy_threshold": healthy, "unhealthy_threshold": unhealthy,
                                  "source_regions": list(regions), "tcp_health_check": {"port": port}})
    create(api, "endpoint-groups", {"name": f"{name}-group", "locality": {"cloud": "aws", "region": "us-east-1"},
                                    "endpoints": [{"address": address, "port": p} for address, p in endpoints]})
    create(api, "backend-services", {"name": name, "mesh": mesh, "health_checks": [f"{name}-check"],
                                     "backends": [{"endpoint_group": f"{name}-group"}]})
    return f"{name}-check", f"{name}-group"
