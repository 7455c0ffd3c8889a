"""Creating tenants and their credentials; the CLI and the API both use these."""
from dataclasses import dataclass

from django.db import transaction

from service.tenants import secrets
from service.tenants.auth import API_KEY_KIND
from service.tenants.models import APIKey, NodeToken, Role, Scope, Tenant

NODE_TOKEN_KIND = "ilt"


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
