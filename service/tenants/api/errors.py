"""One error shape for the whole API:

    {"code": "invalid", "message": "...", "errors": [{"field": "rules[0].matches[0].regex_match",
                                                       "code": "invalid_regex", "message": "..."}]}

`code` is stable for programs, `message` is for people, `field` is the path of
the offending value in the request body ("" when it concerns the whole body).
"""
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.db import IntegrityError
from django.db.models import ProtectedError
from django.http import Http404
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
