"""The provider: its configuration (where the API is, which key), and the
resource and data source types it serves."""
from __future__ import annotations

import os
from importlib import metadata

from tf.iface import Provider
from tf.types import Unknown
from tf.utils import Diagnostics

from terraform.provider import schema as s
from terraform.provider.client import Client
from terraform.provider.data_sources.mesh import MeshData
from terraform.provider.data_sources.proxy_bootstrap import ProxyBootstrap
from terraform.provider.resources.autoscaling_policy import AutoscalingPolicy
from terraform.provider.resources.backend_service import BackendService
from terraform.provider.resources.endpoint_group import EndpointGroup
from terraform.provider.resources.grpc_route import GrpcRoute
from terraform.provider.resources.health_check import HealthCheck
from terraform.provider.resources.http_route import HttpRoute
from terraform.provider.resources.mesh import Mesh
from terraform.provider.resources.node_token import NodeToken
from terraform.provider.resources.tcp_route import TcpRoute

# The address users write in `required_providers` ("interlock/interlock") in full.
SOURCE = "registry.terraform.io/interlock/interlock"
PREFIX = "interlock_"
RESOURCES = [Mesh, HealthCheck, EndpointGroup, BackendService, HttpRoute, GrpcRoute, TcpRoute, AutoscalingPolicy,
             NodeToken]
DATA_SOURCES = [MeshData, ProxyBootstrap]
DESCRIPTION = "Interlock: the tenant's mesh configuration, through the public REST API."

FIELDS = (
    s.string("api_url", "The Interlock API's base URL, e.g. `https://interlock.example.com` (the `/api/v1/` path is "
                        "added). Default: the `INTERLOCK_API_URL` environment variable."),
    s.string("api_key", "An API key of the tenant, with the editor role or above and the read-write scope; the "
                        "key decides the tenant. Default: the `INTERLOCK_API_KEY` environment variable.",
             sensitive=True),
)
ENVIRONMENT = {"api_url": "INTERLOCK_API_URL", "api_key": "INTERLOCK_API_KEY"}


def version() -> str:
    return metadata.version("interlock")


class InterlockProvider(Provider):
    def __init__(self):
        self._client: Client | None = None

    def get_model_prefix(self) -> str:
        return PREFIX

    def full_name(self) -> str:
        return SOURCE

    def get_provider_schema(self, diags: Diagnostics):
        return s.tf_schema(FIELDS, DESCRIPTION)

    def validate_config(self, diags: Diagnostics, config: dict):
        url = (config or {}).get("api_url")
        if isinstance(url, str) and not url.startswith(("http://", "https://")):
            diags.add_error("Invalid api_url", f"{url!r} is not an http:// or https:// URL.", path=["api_url"])

    def configure_provider(self, diags: Diagnostics, config: dict):
        settings = {}
        for name, variable in ENVIRONMENT.items():
            value = (config or {}).get(name)
            if value is Unknown:
                diags.add_error(f"{name} is not known yet",
                                f"The provider needs {name} before it can plan; give a value known at plan time.",
                                path=[name])
            elif not value and not os.environ.get(variable):
                diags.add_error(f"Missing {name}", f"Set {name} in the provider block or {variable} in the "
                                                   "environment.", path=[name])
            settings[name] = value or os.environ.get(variable, "")
        if not diags.has_errors():
            self._client = Client(settings["api_url"], settings["api_key"])

    @property
    def client(self) -> Client:
        if self._client is None:
            raise RuntimeError("The provider was used before Terraform configured it.")
        return self._client

    def get_resources(self):
        return RESOURCES

    def get_data_sources(self):
        return DATA_SOURCES
