"""Creating tenants and their credentials; the CLI and the API both use these."""
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction

from service.tenants import secrets
from service.tenants.auth import API_KEY_KIND
from service.tenants.models import APIKey, NodeToken, Role, Scope, Tenant

NODE_TOKEN_KIND = "ilt"
# The fields of Tenant that are its quotas; quotas.py enforces them.
QUOTA_FIELDS = ("max_resources", "max_endpoints", "max_proxies")


@dataclass(frozen=True)
class Issued:
    record: object
    plaintext: str


def issue_api_key(tenant, name, *, role=Role.EDITOR, scope=Scope.READ_WRITE, created_by=None, rate_limit=""):
    secret = secrets.issue(API_KEY_KIND)
    key = APIKey.objects.create(
        tenant=tenant,
        name=name,
        prefix=secret.prefix,
        digest=secret.digest,
        role=role,
        scope=scope,
        created_by=created_by,
        rate_limit=rate_limit,
    )
    return Issued(key, secret.plaintext)


def issue_node_token(tenant, mesh, name):
    secret = secrets.issue(NODE_TOKEN_KIND)
    token = NodeToken.objects.create(tenant=tenant, mesh=mesh, name=name, prefix=secret.prefix, digest=secret.digest)
    return Issued(token, secret.plaintext)


def find_node_token(plaintext: str) -> NodeToken | None:
    """The token a proxy presented, with its tenant and mesh, if it is valid."""
    prefix = secrets.split(plaintext, NODE_TOKEN_KIND)
    if prefix is None:
        return None
    token = NodeToken.objects.select_related("tenant", "mesh").filter(prefix=prefix).first()
    if token is None or not secrets.matches(plaintext, token.digest):
        return None
    token.mark_used()
    return token


def existing_credential_ids(kind: str, ids: list[int]) -> set[int]:
    """Which of these node tokens (kind ``ilt``) or API keys (``ilk``) still
    exist: revoking one deletes its row."""
    model = {NODE_TOKEN_KIND: NodeToken, API_KEY_KIND: APIKey}[kind]
    return set(model.objects.filter(pk__in=ids).values_list("pk", flat=True))


@transaction.atomic
def create_tenant(name: str) -> tuple[Tenant, Issued]:
    """A tenant and its first API key, an owner key that can mint the others."""
    tenant = Tenant.objects.create(name=name)
    return tenant, issue_api_key(tenant, "owner", role=Role.OWNER)


def set_quotas(name: str, values: dict) -> Tenant:
    """Set some of the named tenant's quotas ({"max_proxies": "50", ...}): the
    operator's act, which no API credential can do. Each value is checked as
    the model's field checks it (a whole number from 0 to the column's
    maximum); a bad one raises ValidationError naming its field, and nothing
    changes. A quota lowered below what the tenant uses keeps what it has and
    refuses its next creates. Raises Tenant.DoesNotExist for an unknown name."""
    unknown = sorted(set(values) - set(QUOTA_FIELDS))
    if unknown:
        raise ValidationError({field: f"Not a quota; the quotas are {', '.join(QUOTA_FIELDS)}." for field in unknown})
    tenant = Tenant.objects.get(name=name)
    for field, value in values.items():
        setattr(tenant, field, value)
    tenant.clean_fields(exclude=[field.name for field in Tenant._meta.fields if field.name not in values])
    # Only these columns: the tenant's other fields, such as the resources
    # bound the quota check keeps under the tenant's lock, are not ours to write.
    tenant.save(update_fields=list(values))
    return tenant
