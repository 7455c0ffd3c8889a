from django.db import transaction
from rest_framework import exceptions, generics, status
from rest_framework.response import Response

from service.tenants.api.serializers import (
    APIKeySerializer,
    MembershipSerializer,
    NodeTokenSerializer,
    TenantSerializer,
)
from service.tenants.api.viewsets import TenantScopedViewSet
from service.tenants.models import APIKey, Membership, NodeToken, Role
from service.tenants.services import issue_api_key, issue_node_token


class TenantView(generics.RetrieveAPIView):
    """The tenant the credential belongs to, its quotas and what it uses of them."""

    serializer_class = TenantSerializer

    def get_object(self):
        return self.request.tenant


class CredentialViewSet(TenantScopedViewSet):
    """Credentials are created and revoked (deleted), never edited: the
    plaintext appears once, in the response to the create."""

    http_method_names = ["get", "post", "delete", "head", "options"]
    secret_field = ""

    @transaction.atomic
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = self.issue(serializer.validated_data)
        self.verify_scope(issued.record)
        body = {**serializer.to_representation(issued.record), self.secret_field: issued.plaintext}
        return Response(body, status=status.HTTP_201_CREATED)


class APIKeyViewSet(CredentialViewSet):
    queryset = APIKey.objects.all()
    serializer_class = APIKeySerializer
    write_role = Role.ADMIN
    read_role = Role.ADMIN
    secret_field = "key"

    def perform_destroy(self, instance):
        refuse_touching_owners(self.request, instance)
        super().perform_destroy(instance)

    def issue(self, data):
        return issue_api_key(self.tenant, created_by=self.request.user, **data)


class NodeTokenViewSet(CredentialViewSet):
    queryset = NodeToken.objects.select_related("mesh")
    serializer_class = NodeTokenSerializer
    secret_field = "token"

    def issue(self, data):
        return issue_node_token(self.tenant, data["mesh"], data["name"])


def refuse_touching_owners(request, record):
    """Only an owner may change or remove what has the owner role, so that no
    admin can lock the owners out."""
    if record.role == Role.OWNER and request.auth.role != Role.OWNER:
        raise exceptions.PermissionDenied("Only an owner can change or remove an owner.")


class MembershipViewSet(TenantScopedViewSet):
    queryset = Membership.objects.select_related("user")
    serializer_class = MembershipSerializer
    write_role = Role.ADMIN
    read_role = Role.ADMIN
    lookup_field = "user__username"
    lookup_url_kwarg = "username"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def perform_update(self, serializer):
        refuse_touching_owners(self.request, serializer.instance)
        super().perform_update(serializer)

    def perform_destroy(self, instance):
        refuse_touching_owners(self.request, instance)
        super().perform_destroy(instance)


