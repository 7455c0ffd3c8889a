from django.urls import path
from rest_framework.routers import SimpleRouter

from service.tenants.api import views

router = SimpleRouter()
router.trailing_slash = "/?"  # both /meshes and /meshes/ resolve
router.register("api-keys", views.APIKeyViewSet)
router.register("node-tokens", views.NodeTokenViewSet)
router.register("members", views.MembershipViewSet)

urlpatterns = [path("tenant", views.TenantView.as_view(), name="tenant"), *router.urls]
