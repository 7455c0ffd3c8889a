import io

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from service.tenants.api.errors import PayloadTooLarge


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
            return super().parse(io.BytesIO(raw), media_type, parser_context)
        except ParseError as exc:
            raise ParseError(f"The body is not valid JSON: {exc.detail}", code="malformed_json") from exc

