"""The data sources: a mesh, and a proxy bootstrap."""
from tf.iface import DataSource

from terraform.provider.resource import Declared


class ApiDataSource(Declared, DataSource):
    """A data source declared as the resources are (ApiResource)."""
