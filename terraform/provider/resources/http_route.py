"""interlock_http_route: which HTTP requests go to which backend services, and what happens on the way."""
from terraform.provider import schema as s
from terraform.provider.resource import ApiResource
from terraform.provider.resources import route_parts as parts

REDIRECT_CODES = ("MOVED_PERMANENTLY_DEFAULT", "FOUND", "SEE_OTHER", "TEMPORARY_REDIRECT", "PERMANENT_REDIRECT")


def header_names(headers):
    """The API stores header names lowercased, and an empty map as none."""
    return {name.lower(): value for name, value in (headers or {}).items()}


def header_modifier(direction: str):
    return s.single(f"{direction}_header_modifier", f"Changes to the {direction}'s headers.", (
        s.string_map("set", "Headers to set, replacing any value they have.", canonical=header_names),
        s.string_map("add", "Headers to add, keeping values they have.", canonical=header_names),
        s.strings("remove", "Names of headers to remove."),
    ))


HEADER_MATCH = (
    s.string("header", "The header's name.", required=True),
    s.string("exact_match", "The value equals this."),
    s.string("regex_match", "The value matches this RE2 regular expression."),
    s.string("prefix_match", "The value starts with this."),
    s.string("suffix_match", "The value ends with this."),
    s.boolean("present_match", "The header is present, whatever its value."),
    s.single("range_match", "The value is an integer in [start, end).", (
        s.number("start", "The smallest value that matches.", required=True),
        s.number("end", "The first value above the range.", required=True),
    )),
    s.boolean("invert_match", "Match requests the rest of this header match does not match.", default=False),
)

QUERY_PARAMETER_MATCH = (
    s.string("query_parameter", "The parameter's name.", required=True),
    s.string("exact_match", "The value equals this."),
    s.string("regex_match", "The value matches this RE2 regular expression."),
    s.boolean("present_match", "The parameter is present, whatever its value."),
)

MATCH = (
    s.string("prefix_match", "The path starts with this, e.g. `/api/`."),
    s.string("full_path_match", "The path is exactly this."),
    s.string("regex_match", "The path matches this RE2 regular expression."),
    s.boolean("ignore_case", "Compare paths ignoring case.", default=False),
    s.many("header_matches", "Conditions on headers, all of which must hold (exactly one `*_match` each).",
           HEADER_MATCH),
    s.many("query_parameters", "Conditions on query parameters, all of which must hold (exactly one `*_match` "
                               "each).", QUERY_PARAMETER_MATCH),
)

ACTION = (
    parts.destinations(),
    parts.timeout(),
    parts.retry_policy(parts.HTTP_RETRY_CONDITIONS),
    parts.fault_injection_policy(),
    s.single("redirect", "Answer with a redirect instead of forwarding (then no destinations, retries, rewrites, "
                         "mirror or timeout).", (
        s.string("host_redirect", "The host to redirect to."),
        s.string("path_redirect", "The path to redirect to (or `prefix_rewrite`)."),
        s.string("prefix_rewrite", "Replace the matched prefix with this."),
        s.number("port_redirect", "The port to redirect to."),
        s.string("response_code", "The redirect's status.", default="MOVED_PERMANENTLY_DEFAULT",
                 choices=REDIRECT_CODES),
        s.boolean("https_redirect", "Redirect to https.", default=False),
        s.boolean("strip_query", "Drop the query string.", default=False),
    )),
    s.single("url_rewrite", "Rewrite the request before forwarding it.", (
        s.string("path_prefix_rewrite", "Replace the matched path prefix with this."),
        s.string("host_rewrite", "Replace the Host header with this."),
    )),
    header_modifier("request"),
    header_modifier("response"),
    s.single("request_mirror_policy", "Copy requests to another backend service, ignoring its answers.", (
        s.single("destination", "Where copies go.", (
            s.string("service_name", "The backend service, by name.", required=True),
        ), required=True),
        s.number("mirror_percent", "The share of requests copied (percent).", default=100),
    )),
    s.single("cors_policy", "Cross-origin resource sharing (CORS) answers.", (
        s.strings("allow_origins", "Origins allowed, exactly."),
        s.strings("allow_origin_regexes", "Origins allowed, as RE2 regular expressions."),
        s.strings("allow_methods", "Methods allowed, e.g. `GET`."),
        s.strings("allow_headers", "Request headers allowed."),
        s.strings("expose_headers", "Response headers exposed."),
        s.number("max_age_sec", "How long a browser may cache the answer to a preflight request."),
        s.boolean("allow_credentials", "Allow requests with credentials.", default=False),
        s.boolean("disabled", "Turn the policy off, keeping its settings.", default=False),
    )),
)


class HttpRoute(ApiResource):
    name = "http_route"
    collection = "http-routes"
    description = ("An HTTP route: requests to its hostnames in its meshes are matched against its rules in order; "
                   "the first rule that matches decides where the request goes (weighted destinations, e.g. a "
                   "canary split) and what happens on the way.")
    fields = (
        *s.common("HTTP route", "HTTP routes"),
        parts.meshes(),
        parts.hostnames("the Host header"),
        parts.rules("The rules, tried in order (1 to 100).", (
            s.many("matches", "The rule applies when any of these matches (none: every request).", MATCH),
            s.single("action", "What happens to matching requests: `destinations` or a `redirect`.", ACTION,
                     required=True),
        )),
        s.ETAG,
    )
