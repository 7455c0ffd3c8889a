from rest_framework.routers import SimpleRouter

from service.mesh.api import views

router = SimpleRouter()
router.trailing_slash = "/?"  # both /meshes and /meshes/ resolve
router.register("meshes", views.MeshViewSet)
router.register("health-checks", views.HealthCheckViewSet)
router.register("endpoint-groups", views.EndpointGroupViewSet)
router.register("backend-services", views.BackendServiceViewSet)
router.register("http-routes", views.HttpRouteViewSet)
router.register("grpc-routes", views.GrpcRouteViewSet)
router.register("tcp-routes", views.TcpRouteViewSet)
router.register("autoscaling-policies", views.AutoscalingPolicyViewSet)
router.register(r"meshes/(?P<mesh_name>[^/]+)/revisions", views.RevisionViewSet, basename="revision")
router.register("changes", views.ChangeViewSet, basename="change")

urlpatterns = router.urls
