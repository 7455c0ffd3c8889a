"""What each proxy has: one row per proxy (node) and one per xDS type it
subscribed to, written by the replica that holds its stream (records.py)."""
from django.db import models

from service.tenants.scoping import TenantOwnedModel
from service.xds import untrusted as length


class ProxyKind(models.TextChoices):
    ENVOY = "envoy"
    GRPC = "grpc"


class Proxy(TenantOwnedModel):
    quota = "proxies"
    quota_counts = "disconnected_at IS NULL"  # connected ones; as records.connected_proxies counts

    # This key, the tenant's and ProxyTypeStatus.proxy cascade in the database too (migration 0002), so a
    # record committed while a mesh is being deleted goes with it.
    mesh = models.ForeignKey("mesh.Mesh", on_delete=models.CASCADE, related_name="proxies")
    name = models.CharField(max_length=length.NODE_NAME_LENGTH)
    node_id = models.CharField(max_length=length.NODE_ID_LENGTH)
    kind = models.CharField(max_length=8, choices=ProxyKind.choices)
    user_agent = models.CharField(max_length=length.USER_AGENT_LENGTH, blank=True, default="")
    cloud = models.CharField(max_length=length.CLOUD_LENGTH, blank=True, default="")
    region = models.CharField(max_length=length.LOCALITY_LENGTH, blank=True, default="")
    zone = models.CharField(max_length=length.LOCALITY_LENGTH, blank=True, default="")
    replica = models.CharField(max_length=length.REPLICA_LENGTH)
    # The stream the row describes, so that an old stream closing late does
    # not mark a reconnected proxy disconnected.
    stream = models.CharField(max_length=32)
    connected_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    disconnected_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "mesh", "name"], name="one_proxy_per_node")]

    def __str__(self):
        return self.node_id


class ProxyTypeStatus(models.Model):
    """Per xDS type: the version last sent, the version last ACKed, the last NACK."""

    proxy = models.ForeignKey(Proxy, on_delete=models.CASCADE, related_name="xds")
    type_url = models.CharField(max_length=length.TYPE_URL_LENGTH)
    version_sent = models.CharField(max_length=length.VERSION_LENGTH, blank=True, default="")
    nonce_sent = models.CharField(max_length=length.NONCE_LENGTH, blank=True, default="")
    sent_at = models.DateTimeField(null=True, blank=True)
    version_acked = models.CharField(max_length=length.VERSION_LENGTH, blank=True, default="")
    acked_at = models.DateTimeField(null=True, blank=True)
    error_message = models.TextField(blank=True, default="")
    error_nonce = models.CharField(max_length=length.NONCE_LENGTH, blank=True, default="")
    error_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["proxy", "type_url"], name="one_status_per_type")]
