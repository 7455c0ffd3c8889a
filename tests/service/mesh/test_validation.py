import math
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework.serializers import ValidationError

from service.mesh import validation as v


def codes(fn, *args, **kwargs):
    with pytest.raises(ValidationError) as exc:
        fn(*args, **kwargs)
    return exc.value.get_codes()


def message(fn, *args, **kwargs):
    with pytest.raises(ValidationError) as exc:
        fn(*args, **kwargs)
    return str(exc.value.detail[0])


# resource_name

@pytest.mark.parametrize("value", ["a", "web", "web-1", "a" * 63, "a-b-c9"])
def test_resource_name_accepts(value):
    assert v.resource_name(value) == value


@pytest.mark.parametrize(
    "value",
    ["", "1web", "-web", "web-", "Web", "web_1", "web.1", "a" * 64, "web\n", " web", 5, None],
)
def test_resource_name_rejects(value):
    assert codes(v.resource_name, value) == ["invalid_name"]


# re2_regex

@pytest.mark.parametrize("value", ["^/api/v[0-9]+/.*$", "a|b", "(?i)foo", r"\d{1,3}", "[a-z]+"])
def test_re2_regex_accepts(value):
    assert v.re2_regex(value) == value


@pytest.mark.parametrize("value", ["(?<=a)b", "(?=a)", r"(a)\1", "(", "a{1001}", "", "\ud800", b"a", None])
def test_re2_regex_rejects_invalid(value):
    assert codes(v.re2_regex, value) == ["invalid_regex"]


def test_re2_regex_message_carries_re2_error():
    assert "invalid perl operator" in message(v.re2_regex, "(?<=a)b")


def test_re2_regex_rejects_huge_alternation_as_too_complex():
    pattern = "|".join(f"{chr(97 + i % 26) * 3}{i}" for i in range(100))
    assert codes(v.re2_regex, pattern) == ["regex_too_complex"]
    assert "100" in message(v.re2_regex, pattern)


def test_re2_regex_program_size_limit_is_exclusive():
    # a{95} compiles to 99 instructions, a{96} to 100, a{97} to 101.
    assert v.re2_regex("a{96}") == "a{96}"
    assert codes(v.re2_regex, "a{97}") == ["regex_too_complex"]


def test_re2_regex_prints_nothing(capfd):
    codes(v.re2_regex, "(?<=a)b")
    assert capfd.readouterr().err == ""


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.text(st.characters(exclude_categories=()), max_size=200),  # lone surrogates too
        st.text(alphabet="()[]{}|*+?.^$\\-:<=!,PpdwbQEaz09", max_size=60),  # regex syntax
    )
)
def test_re2_regex_only_raises_validation_error(text):
    try:
        assert v.re2_regex(text) == text
    except ValidationError as exc:
        assert exc.get_codes()[0] in ("invalid_regex", "regex_too_complex")


# header_name / modifiable_header_name

@pytest.mark.parametrize(
    "value, expected",
    [("X-Request-Id", "x-request-id"), (":path", ":path"), ("host", "host"), ("x_a!#$%&'*+.^`|~", "x_a!#$%&'*+.^`|~")],
)
def test_header_name_accepts_and_lowercases(value, expected):
    assert v.header_name(value) == expected


@pytest.mark.parametrize("value", ["", ":", "x y", "x:y", "x\n", "x\r\n", "é", "a(b)", "::path", 1])
def test_header_name_rejects(value):
    assert codes(v.header_name, value) == ["invalid_header_name"]


@pytest.mark.parametrize("value", ["X-Tenant", "x-forwarded-for", "authorization"])
def test_modifiable_header_name_accepts(value):
    assert v.modifiable_header_name(value) == value.lower()


@pytest.mark.parametrize("value", ["Host", "host", "HOST", ":path", ":authority", ":method"])
def test_modifiable_header_name_refuses_host_and_pseudo_headers(value):
    assert codes(v.modifiable_header_name, value) == ["header_not_modifiable"]


def test_modifiable_header_name_still_checks_syntax():
    assert codes(v.modifiable_header_name, "bad name") == ["invalid_header_name"]


# header_value

@pytest.mark.parametrize("value", ["", "text/html; charset=utf-8", "a\tb", "ünïcode", "x" * 16384])
def test_header_value_accepts(value):
    assert v.header_value(value) == value


@pytest.mark.parametrize(
    "value", ["a\r\nSet-Cookie: x=1", "a\rb", "a\nb", "a\x00b", "x" * 16385, "é" * 8193, None, 3]
)
def test_header_value_rejects(value):
    assert codes(v.header_value, value) == ["invalid_header_value"]


# route_hostname

@pytest.mark.parametrize(
    "value, expected",
    [
        ("*", "*"),
        ("*.example.com", "*.example.com"),
        ("example.*", "example.*"),
        ("*-bar.example.com", "*-bar.example.com"),
        ("foo-*", "foo-*"),
        ("API.Example.COM", "api.example.com"),
        ("example.com:8080", "example.com:8080"),
        ("*.example.com:443", "*.example.com:443"),
        ("localhost", "localhost"),
        ("10.0.0.1", "10.0.0.1"),
    ],
)
def test_route_hostname_accepts(value, expected):
    assert v.route_hostname(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "foo.*.com",
        "**.a",
        "*.*",
        "*.",
        "*example.*",
        "f*o.com",
        "example.*:80",
        "example.com:0",
        "example.com:70000",
        "example.com:",
        "exa mple.com",
        "example..com",
        "-example.com",
        "example.com.",
        "a" * 64 + ".com",
        "é.com",
        None,
    ],
)
def test_route_hostname_rejects(value):
    assert codes(v.route_hostname, value) == ["invalid_hostname"]


# endpoint_address

@pytest.mark.parametrize(
    "value, expected",
    [
        ("10.0.0.1", "10.0.0.1"),
        ("2001:DB8::0:1", "2001:db8::1"),
        ("::1", "::1"),
        ("backend.internal", "backend.internal"),
        ("Web-1.Example.com", "web-1.example.com"),
        ("localhost", "localhost"),
    ],
)
def test_endpoint_address_accepts(value, expected):
    assert v.endpoint_address(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "0.0.0.0",
        "::",
        "",
        "999.1.1.1",
        "10.0.0",
        "fe80::1%eth0",
        "-bad.example.com",
        "bad-.example.com",
        "under_score.com",
        "a..b",
        "a" * 64,
        ".".join(["a" * 63] * 4) + ".com",
        "10.0.0.1:80",
        "http://x.com",
        "\u212a.com",  # Kelvin sign: case-folds to "k" but is not ASCII
        "\u017f.com",  # long s: case-folds to "s" but is not ASCII
        None,
    ],
)
def test_endpoint_address_rejects(value):
    assert codes(v.endpoint_address, value) == ["invalid_address"]


# port

@pytest.mark.parametrize("value", [1, 80, 65535])
def test_port_accepts(value):
    assert v.port(value) == value


@pytest.mark.parametrize("value", [0, -1, 65536, True, "80", 80.0, None])
def test_port_rejects(value):
    assert codes(v.port, value) == ["invalid_port"]


# cidr

@pytest.mark.parametrize(
    "value, expected",
    [
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("10.1.2.3/8", "10.0.0.0/8"),
        ("192.168.1.7/32", "192.168.1.7/32"),
        ("0.0.0.0/0", "0.0.0.0/0"),
        ("2001:DB8::1/32", "2001:db8::/32"),
    ],
)
def test_cidr_accepts_and_normalizes(value, expected):
    assert v.cidr(value) == expected


@pytest.mark.parametrize("value", ["10.0.0.1", "10.0.0.0/33", "2001:db8::/129", "10.0.0/8", "fe80::1%eth0/64", "x/8", "", None])
def test_cidr_rejects(value):
    assert codes(v.cidr, value) == ["invalid_cidr"]


# path_prefix / full_path

@pytest.mark.parametrize("fn", [v.path_prefix, v.full_path])
@pytest.mark.parametrize("value", ["/", "/api/v1/", "/a?b=c", "/%20x", "/" + "a" * 1023])
def test_paths_accept(fn, value):
    assert fn(value) == value


@pytest.mark.parametrize("fn", [v.path_prefix, v.full_path])
@pytest.mark.parametrize(
    "value", ["", "api", "/a b", "/a\tb", "/a\x00", "/a\x7f", "/a\u2003b", "/a#frag", "/" + "a" * 1024, None]
)
def test_paths_reject(fn, value):
    assert codes(fn, value) == ["invalid_path"]


# labels

@pytest.mark.parametrize(
    "value",
    [{}, {"env": "prod"}, {"team": ""}, {"app.kubernetes.io/name": "web_1.2-x"}, {f"k{i}": "v" for i in range(64)}],
)
def test_labels_accept(value):
    assert v.labels(value) == value


@pytest.mark.parametrize(
    "value",
    [
        {"Env": "prod"},
        {"1env": "prod"},
        {"": "x"},
        {"a" * 64: "x"},
        {"env": "a b"},
        {"env": "x" * 64},
        {"env": "pröd"},
        {"env": 1},
        {1: "x"},
        {f"k{i}": "v" for i in range(65)},
        [("env", "prod")],
        None,
    ],
)
def test_labels_reject(value):
    assert codes(v.labels, value) == ["invalid_labels"]


def test_labels_message_names_the_key():
    assert "'env'" in message(v.labels, {"env": "a b"})


# webhook_url

@pytest.mark.parametrize(
    "value",
    ["https://hooks.example.com/scale", "http://10.0.0.1:8080/x?y=1", "HTTPS://Example.com", "http://[::1]:9000/"],
)
def test_webhook_url_accepts(value):
    assert v.webhook_url(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "hooks.example.com/scale",
        "/scale",
        "ftp://example.com/",
        "file:///etc/passwd",
        "https://",
        "https:///path",
        "https://example.com:99999/",
        "https://example.com:port/",
        "http://[::1/",
        "https://exa mple.com/",
        "https://example.com/\n",
        None,
    ],
)
def test_webhook_url_rejects(value):
    assert codes(v.webhook_url, value) == ["invalid_url"]


# duration_sec

@pytest.mark.parametrize(
    "value, expected",
    [(1, 1.0), (0.001, 0.001), (0.1, 0.1), (2.5, 2.5), (Decimal("1.25"), 1.25), (315576000000, 315576000000.0)],
)
def test_duration_sec_accepts(value, expected):
    result = v.duration_sec(value)
    assert isinstance(result, float) and result == expected


@pytest.mark.parametrize(
    "value",
    [0, -1, 0.0005, 1.0005, 315576000001, math.nan, math.inf, -math.inf, True, "1", None, Decimal("NaN")],
)
def test_duration_sec_rejects(value):
    assert codes(v.duration_sec, value) == ["invalid_duration"]


def test_duration_sec_bounds_are_configurable():
    assert v.duration_sec(0, minimum=0) == 0.0
    assert v.duration_sec(30, maximum=30) == 30.0
    assert codes(v.duration_sec, 31, maximum=30) == ["invalid_duration"]
    assert codes(v.duration_sec, 0.5, minimum=1) == ["invalid_duration"]


# percentage

@pytest.mark.parametrize("value", [0, 0.0, 12.5, 100, Decimal("99.9")])
def test_percentage_accepts(value):
    assert v.percentage(value) == float(value)


@pytest.mark.parametrize("value", [-0.1, 100.01, math.nan, math.inf, True, "50", None, Decimal("sNaN")])
def test_percentage_rejects(value):
    assert codes(v.percentage, value) == ["invalid_percentage"]


# unique

def test_unique_accepts_distinct_keys():
    items = [{"name": "a"}, {"name": "b"}]
    assert v.unique(items, lambda item: item["name"], "backend") is items


def test_unique_rejects_and_names_the_duplicate():
    items = [{"name": "a"}, {"name": "b"}, {"name": "a"}]
    assert codes(v.unique, items, lambda item: item["name"], "backend") == ["duplicate"]
    assert "'a'" in message(v.unique, items, lambda item: item["name"], "backend")
