"""The peer `bench/api_write.py` measures route writes against: the smallest
write DRF can do through the same server, settings, authentication and rate
limiting -- one row of a two-field serializer, inserted in a transaction. The
bench's server (DJANGO_SETTINGS_MODULE=bench.api_write_settings) serves it
beside the whole API."""
from django.db import transaction
from django.urls import path
from rest_framework import generics, serializers

from service.mesh.models import Change
from service.urls import urlpatterns as service_urlpatterns


class OneRow(serializers.ModelSerializer):
    class Meta:
        model = Change
        fields = ["kind", "name"]


class OneRowWrite(generics.CreateAPIView):
    serializer_class = OneRow

    @transaction.atomic
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)

    def perform_create(self, serializer):
        serializer.save(tenant=self.request.tenant, actor="bench", action="peer")


urlpatterns = [*service_urlpatterns, path("bench/one-row", OneRowWrite.as_view())]
