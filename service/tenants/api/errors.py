"""One error shape for the whole API:

    {"code": "invalid", "message": "...", "errors": [{"field": "rules[0].matches[0].regex_match",
                                                       "code": "invalid_regex", "message": "..."}]}

`code` is stable for programs, `message` is for people, `field` is the path of
the offending value in the request body ("" when it concerns the whole body).

When the database or Redis is away the answer is a 503 `unavailable` with a
Retry-After header, wherever the error was raised (a view, authentication,
throttling, a middleware): see `server_error`.
"""
import sys

import redis
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.db import IntegrityError, InterfaceError, OperationalError
from django.db.models import ProtectedError
from django.http import Http404, JsonResponse
from django_redis.exceptions import ConnectionInterrupted
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "The change conflicts with the current state."


class PreconditionFailed(exceptions.APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_code = "precondition_failed"
    default_detail = "The resource changed since you read it (If-Match does not match its ETag); read it again."


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"


# Seconds a client is told to wait before retrying when a backing service is away:
# about what a connect attempt and a statement may take (settings.DB_*_TIMEOUT).
RETRY_AFTER_SEC = 5


class Unavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "unavailable"
    wait = RETRY_AFTER_SEC  # DRF's handler turns it into Retry-After


# What the database (lost connection, timeouts: psycopg's QueryCanceled and
# LockNotAvailable are OperationalErrors) and Redis raise when they are away.
DATABASE_AWAY = (OperationalError, InterfaceError)
REDIS_AWAY = (ConnectionInterrupted, redis.ConnectionError, redis.TimeoutError)


def unavailable(exc: Exception) -> Unavailable | None:
    """The 503 for an error that says a backing service is away, else None."""
    if isinstance(exc, DATABASE_AWAY):
        return Unavailable(f"The database is not answering; retry in {RETRY_AFTER_SEC} seconds.")
    if isinstance(exc, REDIS_AWAY):
        return Unavailable(f"Redis is not answering; retry in {RETRY_AFTER_SEC} seconds.")
    return None


def describe(obj) -> str:
    """`kind/name` of a policy resource, or of the resource a link row belongs to."""
    owner = getattr(obj, "referrer", obj)
    return f"{getattr(owner, 'kind', owner._meta.model_name)}/{owner.name}"


def in_use(exc: ProtectedError) -> Response:
    referrers = sorted({describe(obj) for obj in exc.protected_objects})
    return Response(
        {
            "code": "in_use",
            "message": f"It is still referred to by {', '.join(referrers)}; remove those references first.",
            "referrers": referrers,
            "errors": [],
        },
        status=status.HTTP_409_CONFLICT,
    )


def join(path: str, key) -> str:
    if isinstance(key, int):  # a list serializer reports items by index
        return f"{path}[{key}]"
    if key in ("non_field_errors", "__all__"):
        return path
    return f"{path}.{key}" if path else str(key)


def flatten(detail, path="") -> list[dict]:
    """DRF's nested error detail as a flat list of field paths."""
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            out += flatten(value, join(path, key))
        return out
    if isinstance(detail, list):
        if all(isinstance(item, exceptions.ErrorDetail) for item in detail):
            return [{"field": path, "code": item.code, "message": str(item)} for item in detail]
        out = []
        for index, item in enumerate(detail):
            if item:
                out += flatten(item, f"{path}[{index}]")
        return out
    return [{"field": path, "code": getattr(detail, "code", "invalid"), "message": str(detail)}]


def summary(errors: list[dict]) -> str:
    first = errors[0]
    text = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
    more = len(errors) - 1
    return text + (f" (and {more} more)" if more else "")


def exception_handler(exc, context):
    if isinstance(exc, ProtectedError):
        return in_use(exc)
    if isinstance(exc, IntegrityError):
        exc = Conflict("The change conflicts with a concurrent one (a name already taken?); retry it.")
    elif isinstance(exc, (Http404, ObjectDoesNotExist)):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    else:
        exc = unavailable(exc) or exc
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = flatten(exc.detail)
        body = {"code": "invalid", "message": summary(errors), "errors": errors}
    else:
        codes = exc.get_codes()
        body = {
            "code": codes if isinstance(codes, str) else "error",
            "message": str(exc.detail),
            "errors": [],
        }
    response.data = body
    return response


def server_error(request):
    """Django's handler500 (service/urls.py), for what no DRF view answered:
    the same JSON shape, and a 503 when a backing service is away. Django calls
    it while the exception is being handled."""
    exc = sys.exception()
    away = unavailable(exc) if isinstance(exc, Exception) else None
    if away is not None:
        body = {"code": away.default_code, "message": str(away.detail), "errors": []}
        return JsonResponse(body, status=away.status_code, headers={"Retry-After": str(away.wait)})
    body = {"code": "server_error", "message": "The server failed on this request; it has been logged.", "errors": []}
    return JsonResponse(body, status=status.HTTP_500_INTERNAL_SERVER_ERROR)
