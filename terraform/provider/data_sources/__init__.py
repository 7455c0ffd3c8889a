"""The data sources: a mesh, and a proxy bootstrap."""
from typing import ClassVar

from tf.iface import DataSource

from terraform.provider import schema


class ApiDataSource(DataSource):
    """What both data sources share with the resources (ApiResource): a name,
    a schema made of their fields, and the provider's API client."""

    name: ClassVar[str]  # the type name without the provider's prefix, e.g. "mesh"
    description: ClassVar[str]
    fields: ClassVar[tuple[schema.Field, ...]]

    def __init__(self, provider):
        self.provider = provider

    @classmethod
    def get_name(cls) -> str:
        return cls.name

    @classmethod
    def get_schema(cls):
        return schema.tf_schema(cls.fields, cls.description)
