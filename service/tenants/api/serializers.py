from django.contrib.auth import get_user_model
from rest_framework import serializers

from service.mesh import validation
from service.mesh.models import Mesh
from service.tenants import quotas
from service.tenants.api.fields import TenantSlugRelatedField
from service.tenants.models import APIKey, Membership, NodeToken, Role, Tenant


class TenantSerializer(serializers.ModelSerializer):
    usage = serializers.SerializerMethodField()

    class Meta:
        model = Tenant
        fields = ["name", "created_at", "max_resources", "max_endpoints", "max_proxies", "usage"]
        read_only_fields = fields

    def get_usage(self, tenant) -> dict[str, int]:
        return {quota: quotas.usage(tenant, quota) for quota in ("resources", "endpoints", "proxies")}


class CredentialSerializer(serializers.ModelSerializer):
    name = serializers.CharField(max_length=63, validators=[validation.resource_name])

    def validate_name(self, name):
        model = self.Meta.model
        if model.objects.filter(tenant=self.context["tenant"], name=name).exists():
            raise serializers.ValidationError(f"A {model._meta.verbose_name} named '{name}' exists.", code="duplicate")
        return name


class APIKeySerializer(CredentialSerializer):
    class Meta:
        model = APIKey
        fields = ["name", "role", "scope", "rate_limit", "created_at", "last_used_at"]
        read_only_fields = ["created_at", "last_used_at"]

    def validate_role(self, role):
        creator = self.context["request"].auth
        if not Role.at_least(creator.role, role):
            raise serializers.ValidationError(
                f"A key with the {creator.role} role cannot create a key with the {role} role.", code="role_too_high"
            )
        return role

    def validate_rate_limit(self, rate):
        if not rate:
            return rate
        count, _, period = rate.partition("/")
        valid_count = count.isascii() and count.isdigit() and int(count) >= 1
        if not valid_count or period not in ("s", "sec", "m", "min", "h", "hour", "d", "day"):
            raise serializers.ValidationError("Write the rate as '<requests>/<s|min|hour|day>'.", code="invalid_rate")
        return rate


class NodeTokenSerializer(CredentialSerializer):
    mesh = TenantSlugRelatedField(queryset=Mesh.objects.all())

    class Meta:
        model = NodeToken
        fields = ["name", "mesh", "created_at", "last_used_at"]
        read_only_fields = ["created_at", "last_used_at"]


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", max_length=150)
    email = serializers.EmailField(required=False, allow_blank=True, default="")

    class Meta:
        model = Membership
        fields = ["username", "email", "role", "created_at"]
        read_only_fields = ["created_at"]

    def validate_role(self, role):
        creator = self.context["request"].auth
        if role == Role.OWNER and creator.role != Role.OWNER:
            raise serializers.ValidationError("Only an owner can make another owner.", code="role_too_high")
        return role

    def validate_email(self, email):
        return email.lower()

    def validate(self, attrs):
        username = attrs.get("user", {}).get("username")
        if self.instance is None and Membership.objects.filter(
            tenant=self.context["tenant"], user__username=username
        ).exists():
            raise serializers.ValidationError({"username": f"'{username}' is a member already."}, code="duplicate")
        if self.instance is not None and username and username != self.instance.user.username:
            raise serializers.ValidationError({"username": "A membership's user cannot change."}, code="immutable")
        return attrs

    def create(self, validated):
        user_fields = validated.pop("user")
        user, _ = get_user_model().objects.get_or_create(username=user_fields["username"])
        return Membership.objects.create(user=user, **validated)

    def update(self, instance, validated):
        validated.pop("user", None)
        return super().update(instance, validated)
