from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from service import liveness

api_v1 = [
    path("", include("service.tenants.api.urls")),
    path("", include("service.mesh.api.urls")),
    path("", include("service.xds.api.urls")),
    path("schema/", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema", authentication_classes=[], permission_classes=[]),
         name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="schema", authentication_classes=[], permission_classes=[]),
         name="redoc"),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("healthz", liveness.healthz),
    path("readyz", liveness.readyz),
]

# What no view answered is still the API's JSON error shape (a 503 when a backing service is away).
handler500 = "service.tenants.api.errors.server_error"
