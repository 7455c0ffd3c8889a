"""Pure validators that refuse, at the API, any value Envoy (v1.3x) would reject.

Serializers call these so that a bad value is a field-level 400 with a stable
code, never a NACK from every proxy of the mesh minutes later. Each validator
takes a value, returns it (normalized where noted) and raises
``ValidationError(message, code=...)``. No ORM here: these are pure functions.
"""

import ipaddress
import math
import re
import unicodedata
from decimal import Decimal
from urllib.parse import urlsplit

import re2
from rest_framework.serializers import ErrorDetail, ValidationError

# Envoy's runtime key `re2.max_program_size.error_level` defaults to 100: a
# regex whose compiled program is larger is rejected when the config loads.
RE2_MAX_PROGRAM_SIZE = 100

# envoy.config.core.v3.HeaderValue: key and value are `max_bytes: 16384`.
HEADER_MAX_BYTES = 16384

# google.protobuf.Duration carries at most 10,000 years of seconds.
DURATION_MAX_SEC = 315576000000

PATH_MAX_CHARS = 1024
LABELS_MAX_ENTRIES = 64
URL_MAX_CHARS = 2048

_RESOURCE_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
# Envoy's HTTP_HEADER_NAME well-known regex (strict), as in PGV.
_HEADER_NAME = re.compile(r":?[0-9a-zA-Z!#$%&'*+\-.^_|~`]+")
# re.ASCII: with IGNORECASE alone, [a-z] also matches the Kelvin sign and long s.
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", re.IGNORECASE | re.ASCII)
_LABEL_KEY = re.compile(r"[a-z][-a-z0-9_./]{0,62}")
_LABEL_VALUE = re.compile(r"[-a-zA-Z0-9_.]{0,63}")
_HOST_PORT = re.compile(r"(?P<host>.*):(?P<port>[0-9]{1,5})")


def invalid(path: str, message: str, code: str = "invalid") -> ValidationError:
    """A field-level error for a path deep inside the body, e.g. rules[0].action."""
    return ValidationError({path: [ErrorDetail(message, code=code)]})


def _fail(message, code):
    raise ValidationError(message, code=code)


def _text(value, code, what):
    """A str that protobuf can carry: xDS strings must be valid UTF-8, and JSON
    lets a client send a lone surrogate ("\\ud800") that is not."""
    if not isinstance(value, str):
        _fail(f"{what} must be a string.", code)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        _fail(f"{what} must be valid Unicode text (no lone surrogates).", code)
    return value


def _is_finite_number(value):
    # bool is an int subclass, but `true` is never a meaningful number here;
    # NaN and infinity have no protobuf Duration or Percent equivalent.
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return False
    if isinstance(value, Decimal):
        return value.is_finite()
    return math.isfinite(value)


def _has_space_or_control(text):
    return any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in text)


def _is_dns_name(name):
    """RFC 1123 host name: dot-separated labels of 1..63 letters, digits and
    hyphens, not starting or ending with a hyphen, 253 characters at most."""
    if not name or len(name) > 253:
        return False
    return all(_DNS_LABEL.fullmatch(label) for label in name.split("."))


def resource_name(value):
    """Tenant resource names end up in xDS resource names and node ids, so they
    follow RFC 1035 labels like Traffic Director's names do."""
    _text(value, "invalid_name", "Name")
    if not _RESOURCE_NAME.fullmatch(value):
        _fail(
            f"Invalid name {value!r}: use 1 to 63 lowercase letters, digits or "
            "hyphens, starting with a letter and not ending with a hyphen.",
            "invalid_name",
        )
    return value


def re2_regex(value):
    """Envoy compiles every safe_regex with RE2 and rejects the config when RE2
    refuses the pattern or when its program size exceeds the error level."""
    _text(value, "invalid_regex", "Regular expression")
    if not value:
        _fail("Regular expression must not be empty.", "invalid_regex")
    options = re2.Options()
    options.log_errors = False  # RE2 would otherwise print to stderr.
    try:
        compiled = re2.compile(value, options=options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "unknown error"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        _fail(
            f"Invalid RE2 regular expression: {reason}. RE2 has no "
            "lookaround or backreferences.",
            "invalid_regex",
        )
    if compiled.programsize > RE2_MAX_PROGRAM_SIZE:
        _fail(
            f"Regular expression is too complex: its RE2 program size is "
            f"{compiled.programsize}, Envoy's limit is {RE2_MAX_PROGRAM_SIZE}. "
            "Simplify it or split it into several matches.",
            "regex_too_complex",
        )
    return value


def header_name(value):
    """Envoy's HTTP_HEADER_NAME rule; returned lowercased because Envoy (and
    HTTP/2) treat header names case-insensitively and store them lowercase."""
    _text(value, "invalid_header_name", "Header name")
    if len(value) > HEADER_MAX_BYTES or not _HEADER_NAME.fullmatch(value):
        _fail(
            f"Invalid header name {value!r}: use letters, digits and "
            "!#$%&'*+-.^_`|~ only (an optional leading ':' for pseudo-headers).",
            "invalid_header_name",
        )
    return value.lower()


def modifiable_header_name(value):
    """Envoy's header modifiers refuse `:`-prefixed pseudo-headers and `host`
    (router HeaderParser: ":-prefixed or host headers may not be modified")."""
    name = header_name(value)
    if name.startswith(":") or name == "host":
        _fail(
            f"Header {name!r} cannot be added, set or removed: Envoy does not let "
            "header modifiers touch pseudo-headers or 'host'. Use a URL rewrite "
            "for the host or path instead.",
            "header_not_modifiable",
        )
    return name


def header_value(value):
    """Envoy's HTTP_HEADER_VALUE rule (no NUL, CR or LF) and HeaderValue's
    `max_bytes: 16384`, counted in UTF-8 bytes as Envoy counts them."""
    _text(value, "invalid_header_value", "Header value")
    if any(ch in value for ch in "\x00\r\n"):
        _fail(
            "Header value must not contain NUL, carriage return or line feed.",
            "invalid_header_value",
        )
    if len(value.encode("utf-8")) > HEADER_MAX_BYTES:
        _fail(
            f"Header value is longer than {HEADER_MAX_BYTES} bytes.",
            "invalid_header_value",
        )
    return value


def _wildcard_ok(host):
    """Envoy matches a virtual host domain exactly, or with one wildcard as a
    prefix (`*.foo.com`, `*-bar.foo.com`) or a suffix (`foo.*`, `foo-*`); a
    `*` anywhere else is matched literally and so would never match."""
    stars = host.count("*")
    if stars == 0:
        return _is_dns_name(host)
    if stars > 1 or not (host.startswith("*") or host.endswith("*")):
        return False
    # Standing in one letter for the `*` must leave a valid DNS name.
    return _is_dns_name(host.replace("*", "x"))


def route_hostname(value):
    """A virtual host domain: a DNS name with an optional `:port`, at most one
    leading or trailing wildcard, or exactly `*`. Returned lowercased because
    Envoy lowercases the Host header before matching domains."""
    _text(value, "invalid_hostname", "Hostname")
    host = value.lower()
    if host == "*":
        return host
    port_text = None
    match = _HOST_PORT.fullmatch(host)
    if match:
        host, port_text = match["host"], match["port"]
    valid = _wildcard_ok(host)
    # `foo.*:80` does not end with `*`, so Envoy would match it literally.
    if port_text is not None and (host.endswith("*") or not 1 <= int(port_text) <= 65535):
        valid = False
    if not valid:
        _fail(
            f"Invalid hostname {value!r}: use a DNS name with an optional :port, "
            "and at most one '*' as a prefix ('*.example.com') or a suffix "
            "('example.*'), or '*' alone to match every host.",
            "invalid_hostname",
        )
    return host if port_text is None else f"{host}:{port_text}"


def endpoint_address(value):
    """An endpoint's address: an IP literal, or a DNS name, which the xDS
    replica resolves (service/xds/resolve.py) and sends in EDS as the
    addresses it resolves to (and the health workers probe likewise). The
    unspecified address is a bind address, not a peer anyone can connect to.
    IPs are returned in canonical form."""
    _text(value, "invalid_address", "Address")
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        ip = None
    if ip is not None:
        if ip.is_unspecified:
            _fail(
                f"Address {value!r} is the unspecified address; give the "
                "endpoint's real IP address or hostname.",
                "invalid_address",
            )
        if getattr(ip, "scope_id", None):
            _fail(
                f"Address {value!r} has a zone id; it is only meaningful on one "
                "host, give a routable address instead.",
                "invalid_address",
            )
        return str(ip)
    # An all-numeric last label (`999.1.1.1`) is a malformed IP, not a name.
    if not _is_dns_name(value) or value.rsplit(".", 1)[-1].isdigit():
        _fail(
            f"Invalid address {value!r}: give an IPv4 or IPv6 address or a DNS "
            "hostname (labels of letters, digits and hyphens, dot-separated).",
            "invalid_address",
        )
    return value.lower()


def port(value):
    """Envoy's SocketAddress.port_value is `lte: 65535`; port 0 means "any"
    and is only meaningful for binding, never for a peer."""
    if not isinstance(value, int) or isinstance(value, bool):
        _fail("Port must be an integer.", "invalid_port")
    if not 1 <= value <= 65535:
        _fail(f"Port {value} is out of range; use 1 to 65535.", "invalid_port")
    return value


def cidr(value):
    """Envoy's CidrRange: an address prefix and a length. Host bits are cleared
    and the canonical string returned, so equal ranges compare equal."""
    _text(value, "invalid_cidr", "CIDR range")
    network = None
    if "/" in value and "%" not in value:
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            pass
    if network is None:
        _fail(
            f"Invalid CIDR range {value!r}: use address/prefix-length, e.g. "
            "'10.0.0.0/8' or '2001:db8::/32'.",
            "invalid_cidr",
        )
    return str(network)


def _path(value, what):
    # Envoy matches these against :path, which is always origin-form
    # (`/...`); whitespace, control characters and a fragment never occur in
    # a request path, so a rule containing them could never match.
    _text(value, "invalid_path", what)
    problem = None
    if not value.startswith("/"):
        problem = "must start with '/'"
    elif len(value) > PATH_MAX_CHARS:
        problem = f"must be at most {PATH_MAX_CHARS} characters"
    elif _has_space_or_control(value):
        problem = "must not contain whitespace or control characters"
    elif "#" in value:
        problem = "must not contain '#' (fragments are never sent to a server)"
    if problem:
        _fail(f"{what} {value!r} {problem}.", "invalid_path")
    return value


def path_prefix(value):
    return _path(value, "Path prefix")


def full_path(value):
    return _path(value, "Path")


def labels(value):
    """Labels travel as Envoy node/endpoint metadata and are matched by
    selectors, so keys and values are kept to a small, portable alphabet."""
    if not isinstance(value, dict):
        _fail("Labels must be an object of string keys to string values.", "invalid_labels")
    if len(value) > LABELS_MAX_ENTRIES:
        _fail(f"At most {LABELS_MAX_ENTRIES} labels are allowed.", "invalid_labels")
    for key, item in value.items():
        if not isinstance(key, str) or not _LABEL_KEY.fullmatch(key):
            _fail(
                f"Invalid label key {key!r}: start with a lowercase letter, then "
                "up to 62 lowercase letters, digits or -_./.",
                "invalid_labels",
            )
        if not isinstance(item, str) or not _LABEL_VALUE.fullmatch(item):
            _fail(
                f"Invalid value for label {key!r}: use up to 63 letters, digits "
                "or -_. (it may be empty).",
                "invalid_labels",
            )
    return dict(value)


def webhook_url(value):
    """Scalers call this URL from workers, so it must be absolute http(s) with
    a host; urlsplit silently drops some whitespace, so refuse it up front."""
    _text(value, "invalid_url", "URL")
    problem = None
    if len(value) > URL_MAX_CHARS:
        problem = f"is longer than {URL_MAX_CHARS} characters"
    elif _has_space_or_control(value):
        problem = "must not contain whitespace or control characters"
    else:
        try:
            parts = urlsplit(value)
            parts.port  # raises ValueError on a non-numeric or out-of-range port
        except ValueError:
            problem = "is malformed"
        else:
            if parts.scheme.lower() not in ("http", "https"):
                problem = "must use http or https"
            elif not parts.hostname:
                problem = "must include a host"
    if problem:
        _fail(
            f"URL {value!r} {problem}; give an absolute URL such as "
            "'https://hooks.example.com/scale'.",
            "invalid_url",
        )
    return value


def duration_sec(value, *, minimum=0.001, maximum=DURATION_MAX_SEC):
    """Seconds as a google.protobuf.Duration, which Envoy mostly reads at
    millisecond precision (PROTOBUF_GET_MS_*): a sub-millisecond part would be
    silently dropped, so it is refused rather than drift from what was asked."""
    if not _is_finite_number(value):
        _fail("Duration must be a finite number of seconds.", "invalid_duration")
    if not minimum <= value <= maximum:
        _fail(
            f"Duration {value} s is out of range; use {minimum} to {maximum} seconds.",
            "invalid_duration",
        )
    # repr() of a float is its shortest round-trip form, so 0.1 stays 0.1.
    exact = Decimal(repr(value) if isinstance(value, float) else str(value))
    if exact != exact.quantize(Decimal("0.001")):
        _fail(
            f"Duration {value} s is finer than a millisecond; Envoy keeps "
            "durations to the millisecond.",
            "invalid_duration",
        )
    return float(value)


def percentage(value):
    """envoy.type.v3.Percent: a double from 0 to 100 inclusive."""
    if not _is_finite_number(value):
        _fail("Percentage must be a finite number.", "invalid_percentage")
    if not 0 <= value <= 100:
        _fail(f"Percentage {value} is out of range; use 0 to 100.", "invalid_percentage")
    return float(value)


def unique(items, key, what):
    """Envoy rejects duplicates in many repeated fields (virtual host domains,
    cluster names, ...); name the first repeated key so it can be fixed."""
    seen = set()
    for item in items:
        k = key(item)
        if k in seen:
            _fail(f"Duplicate {what} {k!r}: each {what} may appear only once.", "duplicate")
        seen.add(k)
    return items
