"""Liveness and readiness for load balancers and orchestrators.

/healthz touches nothing but the process: it answers while a worker is free,
and the database and Redis timeouts (settings.py) keep workers from being
held. /readyz checks the database and the notice bus at once, each in a
thread of its own, and answers within READY_TIMEOUT_SEC whatever they do.
"""
import threading
import time

from django.db import connection
from django.http import JsonResponse

from service.notices import get_bus

# An orchestrator's readiness probe should allow a little more (timeoutSeconds: 3).
READY_TIMEOUT_SEC = 2.0


def healthz(request):
    return JsonResponse({"status": "ok"})


def readyz(request):
    """Ready when the database answers and the notice bus can publish."""
    checks = concurrently({"database": select_one, "notices": lambda: get_bus().ping()}, READY_TIMEOUT_SEC)
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


def select_one():
    """On this thread's own connection, closed again: a probe holds none between runs."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()


def concurrently(checks: dict, timeout: float) -> dict[str, str]:
    """Each check's verdict: "ok", "error: <exception class>", or "error: no answer
    within <timeout>s" (its thread is left to end by the client's own timeouts)."""
    verdicts = {}
    threads = [threading.Thread(target=run, args=(name, check, verdicts), daemon=True, name=f"readyz-{name}")
               for name, check in checks.items()]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return {name: verdicts.get(name, f"error: no answer within {timeout:g}s") for name in checks}


def run(name: str, check, verdicts: dict) -> None:
    try:
        check()
        verdicts[name] = "ok"
    except Exception as exc:  # any failure means not ready; say which
        verdicts[name] = f"error: {exc.__class__.__name__}"
