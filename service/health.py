"""Liveness and readiness for load balancers and orchestrators."""
from django.db import connection
from django.http import JsonResponse

from service.notices import get_bus


def healthz(request):
    return JsonResponse({"status": "ok"})


def readyz(request):
    """Ready when the database answers and the notice bus can publish."""
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready; say which
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        get_bus().ping()
        checks["notices"] = "ok"
    except Exception as exc:
        checks["notices"] = f"error: {exc.__class__.__name__}"
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)
