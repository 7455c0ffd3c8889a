import io
import re

from django.conf import settings
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser

from service.tenants.api.errors import PayloadTooLarge

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Deeper than the deepest resource (route rules) with room to spare.
MAX_DEPTH = 32


class BoundedJSONParser(JSONParser):
    """JSON bodies up to MAX_REQUEST_BODY_BYTES; larger ones are refused with a
    413 before any of them is parsed (DRF reads the raw stream, past Django's
    own body limit)."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.MAX_REQUEST_BODY_BYTES
        request = parser_context["request"]
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
        raw = stream.read(limit + 1) if stream is not None else b""
        if declared > limit or len(raw) > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
        try:
            data = super().parse(io.BytesIO(raw), media_type, parser_context)
        except ParseError as exc:
            raise ParseError(f"The body is not valid JSON: {exc.detail}", code="malformed_json") from exc
        except RecursionError as exc:
            raise ParseError("The body is nested too deeply.", code="malformed_json") from exc
        check_storable(data)
        return data


def unstorable(text: str) -> bool:
    """NUL and unpaired surrogates: JSON can carry them, but Postgres text and
    protobuf strings cannot."""
    return UNSTORABLE.search(text) is not None


def check_storable(data, depth_limit=MAX_DEPTH):
    """Refuse, with the path, any string nothing downstream could store, and
    nesting deeper than any resource has."""
    pending = [(data, "", 0)]
    while pending:
        value, path, depth = pending.pop()
        if depth > depth_limit:
            raise ParseError(f"The body is nested deeper than {depth_limit} levels.", code="malformed_json")
        if isinstance(value, str) and unstorable(value):
            raise ValidationError({path: ["This text contains a NUL or an unpaired surrogate character."]},
                                  code="invalid_text")
        if isinstance(value, dict):
            for key, item in value.items():
                child = f"{path}.{key}" if path else key
                if unstorable(key):
                    raise ValidationError({path: ["A key contains a NUL or an unpaired surrogate character."]},
                                          code="invalid_text")
                pending.append((item, child, depth + 1))
        elif isinstance(value, list):
            pending.extend((item, f"{path}[{index}]", depth + 1) for index, item in enumerate(value))

