"""The base every tenant-owned API endpoint uses: the queryset is restricted to
the credential's tenant before anything else runs, writes are atomic, creates
are quota-checked under the tenant's lock at the end of their transaction, and
every write is re-checked for tenant consistency inside its transaction before
it may commit."""
from django.db import transaction
from rest_framework import exceptions, viewsets

from service.tenants import quotas
from service.tenants.api.parsers import unstorable
from service.tenants.models import Role


class TenantScopedViewSet(viewsets.ModelViewSet):
    lookup_field = "name"
    lookup_value_regex = "[^/]+"
    write_role = Role.EDITOR

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.tenant = request.tenant
        if any(unstorable(str(value)) for value in kwargs.values()):
            raise exceptions.NotFound()  # no name can hold such characters

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset.none()
        queryset = self.queryset.for_tenant(self.tenant)
        if self.request.method not in ("GET", "HEAD", "OPTIONS") and transaction.get_connection().in_atomic_block:
            # Writers of one object queue behind each other (If-Match, referrers),
            # but not the foreign-key checks of rows that refer to it (NO KEY).
            queryset = queryset.select_for_update(of=("self",), no_key=True)
        return queryset

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["tenant"] = getattr(self, "tenant", None)
        return context

    @transaction.atomic
    def create(self, request, *args, **kwargs):
        return super().create(request, *args, **kwargs)

    @transaction.atomic
    def update(self, request, *args, **kwargs):
        return super().update(request, *args, **kwargs)

    @transaction.atomic
    def destroy(self, request, *args, **kwargs):
        return super().destroy(request, *args, **kwargs)

    def perform_create(self, serializer):
        instance = serializer.save(tenant=self.tenant)
        self.verify_scope(instance)
        self.written("create", instance, before=None, serializer=serializer)

    def perform_update(self, serializer):
        before = self.snapshot(serializer.instance)
        instance = serializer.save()
        self.verify_scope(instance)
        self.written("update", instance, before=before, serializer=serializer)

    def perform_destroy(self, instance):
        before = self.snapshot(instance)
        instance.delete()
        self.written("delete", instance, before=before)

    def verify_scope(self, instance):
        """The NetBox re-check: what was saved must be visible through this
        tenant's queryset and refer only to this tenant's objects."""
        visible = self.queryset.filter(tenant=self.tenant, pk=instance.pk).exists()
        if not visible or not instance.belongs_wholly_to(self.tenant):
            raise exceptions.PermissionDenied("The change would reach outside this tenant.")

    def snapshot(self, instance):
        """What a subclass needs to remember of an object before it changes."""
        return None

    def written(self, action, instance, before, serializer=None):
        """Called inside the write's transaction, after the write (by
        `serializer`, for a create or an update); last, so
        that the tenant's lock (the quota check) is held only until commit."""
        if action == "create" and instance.quota:
            quotas.ensure_room(self.tenant, instance.quota)
