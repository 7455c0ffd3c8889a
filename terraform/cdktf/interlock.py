"""Interlock's resources for CDKTF, made from the provider's own schema.

`cdktf get` would generate bindings with the npm CLI, which CDKTF's sunset
makes a poor thing to depend on. These constructs are thin instead: a
resource is a `TerraformResource` of the provider's type whose arguments are
set as they are given (snake_case, nested objects as dicts and lists, exactly
as in HCL; `depends_on` is Terraform's meta-argument), after a check against
the provider's schema, so a misspelt or missing argument fails at synth
rather than at plan.
"""
from __future__ import annotations

from cdktf import LocalBackend, TerraformDataSource, TerraformProvider, TerraformResource
from constructs import Construct

from terraform.cdktf.arguments import DATA_SOURCES, RESOURCES, check_arguments
from terraform.provider import provider as interlock_provider


def set_arguments(element, arguments: dict):
    for name, value in arguments.items():
        if value is not None:
            element.add_override(name, value)


def provider(scope: Construct, api_url: str | None = None, api_key: str | None = None) -> TerraformProvider:
    """The provider block (left empty, it reads INTERLOCK_API_URL and INTERLOCK_API_KEY)."""
    block = TerraformProvider(scope, "interlock", terraform_resource_type="interlock",
                              terraform_provider_source=interlock_provider.SOURCE)
    set_arguments(block, {"api_url": api_url, "api_key": api_key})
    return block


def local_state(scope: Construct):
    """State next to the synthesized configuration, wherever that is applied."""
    LocalBackend(scope, path="terraform.tfstate")


class Resource(TerraformResource):
    """`Resource(scope, "storefront", "backend_service", name="storefront", mesh=...)`"""

    def __init__(self, scope: Construct, id: str, kind: str, /, depends_on=None, **arguments):
        if kind not in RESOURCES:
            raise TypeError(f"No Interlock resource {kind!r}; there are {', '.join(sorted(RESOURCES))}.")
        check_arguments(RESOURCES[kind], arguments, interlock_provider.PREFIX + kind)
        super().__init__(scope, id, terraform_resource_type=interlock_provider.PREFIX + kind, depends_on=depends_on)
        set_arguments(self, arguments)

    def ref(self, attribute: str) -> str:
        """A reference to an attribute, e.g. `mesh.ref("name")` for `interlock_mesh.<id>.name`."""
        return self.get_string_attribute(attribute)


class DataSource(TerraformDataSource):
    """`DataSource(scope, "shop", "mesh", name=...)`"""

    def __init__(self, scope: Construct, id: str, kind: str, /, depends_on=None, **arguments):
        if kind not in DATA_SOURCES:
            raise TypeError(f"No Interlock data source {kind!r}; there are {', '.join(sorted(DATA_SOURCES))}.")
        check_arguments(DATA_SOURCES[kind], arguments, f"data.{interlock_provider.PREFIX}{kind}")
        super().__init__(scope, id, terraform_resource_type=interlock_provider.PREFIX + kind, depends_on=depends_on)
        set_arguments(self, arguments)

    def ref(self, attribute: str) -> str:
        return self.get_string_attribute(attribute)
