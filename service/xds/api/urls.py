from rest_framework.routers import SimpleRouter

from service.xds.api import views

router = SimpleRouter()
router.trailing_slash = "/?"
router.register("proxies", views.ProxyViewSet)

urlpatterns = router.urls
