"""The building blocks of route rules: matches and actions. Names follow
Traffic Director's route resources."""
from rest_framework import serializers

from service.mesh import validation
from service.mesh.api.serializers.base import Block, duration, percentage

MAX_WEIGHT = 1_000_000
HTTP_RETRY_CONDITIONS = [
    "5xx", "gateway-error", "reset", "connect-failure", "retriable-4xx", "refused-stream",
    "cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable",
]
GRPC_RETRY_CONDITIONS = ["cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable",
                         "connect-failure", "refused-stream", "reset"]
REDIRECT_CODES = ["MOVED_PERMANENTLY_DEFAULT", "FOUND", "SEE_OTHER", "TEMPORARY_REDIRECT", "PERMANENT_REDIRECT"]


def regex(**kwargs):
    return serializers.CharField(validators=[validation.re2_regex], **kwargs)


def block_list(block, what, key=None, **kwargs):
    validators = [lambda items: validation.unique(items, key, what)] if key else []
    return serializers.ListSerializer(child=block(), required=False, validators=validators, **kwargs)


class Destination(Block):
    service_name = serializers.CharField(validators=[validation.resource_name])
    weight = serializers.IntegerField(default=1, min_value=0, max_value=MAX_WEIGHT)


def destinations(**kwargs):
    return block_list(Destination, "destination", key=lambda d: d["service_name"], max_length=100, **kwargs)


INT64 = 2**63


class RangeMatch(Block):
    # envoy.type.v3.Int64Range
    start = serializers.IntegerField(min_value=-INT64, max_value=INT64 - 1)
    end = serializers.IntegerField(min_value=-INT64, max_value=INT64 - 1)

    def validate(self, attrs):
        if attrs["start"] >= attrs["end"]:
            raise serializers.ValidationError("A range's start must be below its end.", code="empty_range")
        return attrs


class HeaderMatch(Block):
    one_of = ("exact_match", "regex_match", "prefix_match", "suffix_match", "present_match", "range_match")
    one_of_required = True

    header = serializers.CharField(validators=[validation.header_name])
    exact_match = serializers.CharField(required=False, validators=[validation.header_value])
    regex_match = regex(required=False)
    prefix_match = serializers.CharField(required=False, validators=[validation.header_value])
    suffix_match = serializers.CharField(required=False, validators=[validation.header_value])
    present_match = serializers.BooleanField(required=False)
    range_match = RangeMatch(required=False)
    invert_match = serializers.BooleanField(default=False)


class QueryParameterMatch(Block):
    one_of = ("exact_match", "regex_match", "present_match")
    one_of_required = True

    query_parameter = serializers.CharField(max_length=1024)
    exact_match = serializers.CharField(required=False, max_length=1024)
    regex_match = regex(required=False)
    present_match = serializers.BooleanField(required=False)


class HttpRouteMatch(Block):
    one_of = ("prefix_match", "full_path_match", "regex_match")

    prefix_match = serializers.CharField(required=False, validators=[validation.path_prefix])
    full_path_match = serializers.CharField(required=False, validators=[validation.full_path])
    regex_match = regex(required=False)
    ignore_case = serializers.BooleanField(default=False)
    header_matches = block_list(HeaderMatch, "header match", max_length=32)
    query_parameters = block_list(QueryParameterMatch, "query parameter match", max_length=32)


class RetryPolicy(Block):
    retry_conditions = serializers.ListField(
        child=serializers.ChoiceField(HTTP_RETRY_CONDITIONS), required=False,
        validators=[lambda items: validation.unique(items, str, "retry condition")],
    )
    num_retries = serializers.IntegerField(default=1, min_value=0, max_value=25)
    per_try_timeout_sec = duration(required=False)


class GrpcRetryPolicy(RetryPolicy):
    retry_conditions = serializers.ListField(
        child=serializers.ChoiceField(GRPC_RETRY_CONDITIONS), required=False,
        validators=[lambda items: validation.unique(items, str, "retry condition")],
    )


class FaultDelay(Block):
    fixed_delay_sec = duration(minimum=0.001, maximum=3600)
    percentage = percentage(default=100)


class FaultAbort(Block):
    http_status = serializers.IntegerField(min_value=200, max_value=599)
    percentage = percentage(default=100)


class FaultInjectionPolicy(Block):
    delay = FaultDelay(required=False)
    abort = FaultAbort(required=False)

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError("Give a delay, an abort or both.", code="required")
        return attrs


class UrlRewrite(Block):
    path_prefix_rewrite = serializers.CharField(required=False, validators=[validation.path_prefix])
    host_rewrite = serializers.CharField(required=False, validators=[validation.route_hostname])


def header_map(**kwargs):
    return serializers.DictField(child=serializers.CharField(allow_blank=True, validators=[validation.header_value]),
                                 required=False, **kwargs)


class HeaderModifier(Block):
    set = header_map()
    add = header_map()
    remove = serializers.ListField(child=serializers.CharField(validators=[validation.modifiable_header_name]),
                                   required=False)

    def validate(self, attrs):
        for part in ("set", "add"):
            attrs[part] = {validation.modifiable_header_name(name): value for name, value in attrs.get(part, {}).items()}
            if not attrs[part]:
                del attrs[part]
        return attrs


class MirrorDestination(Block):
    service_name = serializers.CharField(validators=[validation.resource_name])


class RequestMirrorPolicy(Block):
    destination = MirrorDestination()
    mirror_percent = percentage(default=100)


class CorsPolicy(Block):
    allow_origins = serializers.ListField(child=serializers.CharField(max_length=1024), required=False)
    allow_origin_regexes = serializers.ListField(child=regex(), required=False)
    allow_methods = serializers.ListField(child=serializers.RegexField(r"^[A-Z]+$", max_length=32), required=False)
    allow_headers = serializers.ListField(child=serializers.CharField(validators=[validation.header_name]),
                                          required=False)
    expose_headers = serializers.ListField(child=serializers.CharField(validators=[validation.header_name]),
                                           required=False)
    max_age_sec = serializers.IntegerField(required=False, min_value=0, max_value=86400 * 365)
    allow_credentials = serializers.BooleanField(default=False)
    disabled = serializers.BooleanField(default=False)


class Redirect(Block):
    one_of = ("path_redirect", "prefix_rewrite")

    host_redirect = serializers.CharField(required=False, validators=[validation.route_hostname])
    path_redirect = serializers.CharField(required=False, validators=[validation.full_path])
    prefix_rewrite = serializers.CharField(required=False, validators=[validation.path_prefix])
    port_redirect = serializers.IntegerField(required=False, validators=[validation.port])
    response_code = serializers.ChoiceField(REDIRECT_CODES, default="MOVED_PERMANENTLY_DEFAULT")
    https_redirect = serializers.BooleanField(default=False)
    strip_query = serializers.BooleanField(default=False)


class ForwardingAction(Block):
    """What HTTP and gRPC actions share: where traffic goes and how it is retried."""

    destinations = destinations()
    timeout_sec = duration(required=False, maximum=86400)
    fault_injection_policy = FaultInjectionPolicy(required=False)

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if attrs.get("destinations") and sum(d["weight"] for d in attrs["destinations"]) == 0:
            raise serializers.ValidationError(
                {"destinations": ["The weights add up to 0; at least one destination needs a positive weight."]},
                code="zero_total_weight",
            )
        retry = attrs.get("retry_policy") or {}
        if "per_try_timeout_sec" in retry and "timeout_sec" in attrs and retry["per_try_timeout_sec"] > attrs["timeout_sec"]:
            raise serializers.ValidationError(
                {"retry_policy": {"per_try_timeout_sec": ["A try cannot take longer than the whole request's timeout."]}},
                code="timeout_too_long",
            )
        return attrs


class HttpRouteAction(ForwardingAction):
    retry_policy = RetryPolicy(required=False)
    redirect = Redirect(required=False)
    url_rewrite = UrlRewrite(required=False)
    request_header_modifier = HeaderModifier(required=False)
    response_header_modifier = HeaderModifier(required=False)
    request_mirror_policy = RequestMirrorPolicy(required=False)
    cors_policy = CorsPolicy(required=False)

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if bool(attrs.get("destinations")) == bool(attrs.get("redirect")):
            raise serializers.ValidationError("Give either destinations or a redirect.", code="destinations_or_redirect")
        if attrs.get("redirect"):
            forwarding_only = [key for key in ("url_rewrite", "retry_policy", "request_mirror_policy", "timeout_sec")
                               if key in attrs]
            if forwarding_only:
                raise serializers.ValidationError(
                    f"A redirect forwards nothing, so {', '.join(forwarding_only)} cannot go with it.",
                    code="conflicting_fields",
                )
        return attrs


class GrpcMethodMatch(Block):
    grpc_service = serializers.CharField(required=False, max_length=1024)
    grpc_method = serializers.CharField(max_length=1024)
    type = serializers.ChoiceField(["EXACT", "REGULAR_EXPRESSION"], default="EXACT")
    case_sensitive = serializers.BooleanField(default=True)

    def validate(self, attrs):
        if attrs["type"] == "REGULAR_EXPRESSION":
            for key in ("grpc_service", "grpc_method"):
                if key in attrs:
                    try:
                        validation.re2_regex(attrs[key])
                    except serializers.ValidationError as exc:
                        raise serializers.ValidationError({key: exc.detail}) from exc
        return attrs


class GrpcHeaderMatch(Block):
    key = serializers.CharField(validators=[validation.header_name])
    value = serializers.CharField(validators=[validation.header_value])
    type = serializers.ChoiceField(["EXACT", "REGULAR_EXPRESSION"], default="EXACT")

    def validate(self, attrs):
        if attrs["type"] == "REGULAR_EXPRESSION":
            try:
                validation.re2_regex(attrs["value"])
            except serializers.ValidationError as exc:
                raise serializers.ValidationError({"value": exc.detail}) from exc
        return attrs


class GrpcRouteMatch(Block):
    method = GrpcMethodMatch(required=False)
    headers = block_list(GrpcHeaderMatch, "header match", max_length=32)


class GrpcRouteAction(ForwardingAction):
    retry_policy = GrpcRetryPolicy(required=False)

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if not attrs.get("destinations"):
            raise serializers.ValidationError({"destinations": ["Give at least one destination."]}, code="required")
        return attrs


class TcpRouteMatch(Block):
    address = serializers.CharField(default="0.0.0.0/0", validators=[validation.cidr])
    port = serializers.IntegerField(validators=[validation.port])


class TcpRouteAction(Block):
    destinations = destinations()

    def validate(self, attrs):
        if not attrs.get("destinations"):
            raise serializers.ValidationError({"destinations": ["Give at least one destination."]}, code="required")
        if sum(d["weight"] for d in attrs["destinations"]) == 0:
            raise serializers.ValidationError({"destinations": ["The weights add up to 0."]}, code="zero_total_weight")
        return attrs
