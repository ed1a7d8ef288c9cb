"""What a browser may make the server do: Host (421), origin (403), body type (415), CORS."""

from __future__ import annotations

import pytest

from claude_max_api.settings import Settings, SettingsError, parse_serve_args
from proxy_http.browser_policy import (
    BrowserHeaders,
    BrowserPolicy,
    Decision,
    HostName,
    Origin,
    Verdict,
    is_json_media_type,
    parse_allowed_hosts,
    parse_allowed_origins,
    parse_host,
    parse_origin,
)

LOCAL = "127.0.0.1:3456"
JSON = "application/json"


def policy(
    host: str = "127.0.0.1", hosts: str | None = None, origins: str | None = None
) -> BrowserPolicy:
    return BrowserPolicy.from_settings(host, hosts, origins)


def decision(
    rules: BrowserPolicy,
    method: str = "GET",
    *,
    host: str | None = LOCAL,
    origin: str | None = None,
    site: str | None = None,
    content_type: str | None = None,
    preflight: str | None = None,
) -> Decision:
    """The policy's decision on a request with these headers (None: not sent)."""
    pairs = [
        (b"host", host),
        (b"origin", origin),
        (b"sec-fetch-site", site),
        (b"content-type", content_type),
        (b"access-control-request-method", preflight),
    ]
    headers = BrowserHeaders.of(
        [(name, value.encode()) for name, value in pairs if value is not None]
    )
    return rules.decide(method, headers)


def decide(rules: BrowserPolicy, method: str = "GET", **headers: str | None) -> Verdict:
    return decision(rules, method, **headers).verdict


# -- content type ------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "Application/Json;Charset=UTF-8",
        '  application/json ;  charset = "utf-8" ',
        "application/json; charset=utf8",
    ],
)
def test_json_with_or_without_a_utf8_charset_is_accepted(value: str) -> None:
    assert is_json_media_type(value)
    assert decide(policy(), "POST", content_type=value) is Verdict.PASS


@pytest.mark.parametrize(
    "value",
    [
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json-patch+json",
        "application/vnd.api+json",
        "application/jsonx",
        "json",
        "",
        "application/json; charset=latin-1",
    ],
)
def test_every_other_body_type_gets_415(value: str) -> None:
    assert not is_json_media_type(value)
    assert decide(policy(), "POST", content_type=value) is Verdict.UNSUPPORTED_MEDIA_TYPE


def test_a_post_without_a_content_type_gets_415() -> None:
    assert decide(policy(), "POST") is Verdict.UNSUPPORTED_MEDIA_TYPE


def test_a_content_type_sent_twice_gets_415() -> None:
    headers = BrowserHeaders(host=(LOCAL,), content_type=(JSON, "text/plain"))
    assert policy().decide("POST", headers).verdict is Verdict.UNSUPPORTED_MEDIA_TYPE


def test_methods_without_a_body_need_no_content_type() -> None:
    # No endpoint reads their body, and no page can send them cross-origin unpreflighted.
    for method in ("GET", "HEAD", "DELETE", "OPTIONS", "PUT", "PATCH"):
        assert decide(policy(), method) is Verdict.PASS


# -- origin and Sec-Fetch-Site -------------------------------------------------------


def test_a_request_without_origin_passes_as_non_browser_clients_send() -> None:
    assert decide(policy(), "POST", content_type=JSON) is Verdict.PASS


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://localhost:8080",  # another local server's page: another origin
        "http://127.0.0.1:3457",
        "http://localhost:3456",  # not the origin the Host names (127.0.0.1:3456)
        "null",
        "not an origin",
        "http://127.0.0.1:3456/path",
    ],
)
def test_a_foreign_origin_gets_403_before_its_body_is_looked_at(origin: str) -> None:
    rules = policy()
    assert decide(rules, "POST", origin=origin, content_type="text/plain") is (
        Verdict.FORBIDDEN_ORIGIN
    )
    assert decide(rules, "GET", origin=origin) is Verdict.FORBIDDEN_ORIGIN


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        ("127.0.0.1:3456", "http://127.0.0.1:3456"),
        ("localhost:3456", "http://LOCALHOST:3456"),
        ("[::1]:3456", "http://[::1]:3456"),
        ("localhost", "http://localhost"),
        ("localhost", "https://localhost:443"),
    ],
)
def test_the_servers_own_pages_pass_as_same_origin(host: str, origin: str) -> None:
    assert decide(policy(), "POST", host=host, origin=origin, content_type=JSON) is Verdict.PASS
    assert (
        decide(policy(), "POST", host=host, origin=origin, site="same-origin", content_type=JSON)
        is Verdict.PASS
    )


def test_a_same_origin_claim_with_sec_fetch_site_cross_site_gets_403() -> None:
    assert (
        decide(policy(), "GET", origin="http://127.0.0.1:3456", site="cross-site")
        is Verdict.FORBIDDEN_ORIGIN
    )


@pytest.mark.parametrize("site", ["cross-site", "Cross-Site", " cross-site "])
def test_sec_fetch_site_cross_site_without_origin_gets_403(site: str) -> None:
    assert decide(policy(), "GET", site=site) is Verdict.FORBIDDEN_ORIGIN


@pytest.mark.parametrize("site", ["same-origin", "none", "same-site"])
def test_other_sec_fetch_site_values_without_origin_pass(site: str) -> None:
    assert decide(policy(), "GET", site=site) is Verdict.PASS


def test_an_origin_sent_twice_gets_403() -> None:
    headers = BrowserHeaders(host=(LOCAL,), origin=("http://127.0.0.1:3456",) * 2)
    assert policy().decide("GET", headers).verdict is Verdict.FORBIDDEN_ORIGIN


def test_a_listed_origin_passes_cross_site_and_is_named_for_cors() -> None:
    rules = policy(origins="https://app.example, http://localhost:5173")
    for origin in ("https://app.example", "https://APP.example:443", "http://localhost:5173"):
        result = decision(rules, "POST", origin=origin, site="cross-site", content_type=JSON)
        assert result == Decision(Verdict.PASS, origin)
    assert decide(rules, "GET", origin="https://evil.example") is Verdict.FORBIDDEN_ORIGIN
    assert decide(rules, "GET", origin="http://app.example") is Verdict.FORBIDDEN_ORIGIN
    assert decide(rules, "GET", origin="https://app.example:8443") is Verdict.FORBIDDEN_ORIGIN


def test_a_listed_origin_still_needs_a_json_body() -> None:
    rules = policy(origins="https://app.example")
    result = decision(rules, "POST", origin="https://app.example", content_type="text/plain")
    assert result == Decision(Verdict.UNSUPPORTED_MEDIA_TYPE, "https://app.example")


# -- preflights ----------------------------------------------------------------------


def test_preflights_are_refused_when_no_origin_is_listed() -> None:
    for origin in ("https://app.example", "http://127.0.0.1:3456"):
        verdict = decide(policy(), "OPTIONS", origin=origin, preflight="POST")
        assert verdict is Verdict.FORBIDDEN_ORIGIN


def test_a_listed_origins_preflight_is_answered() -> None:
    rules = policy(origins="https://app.example")
    result = decision(rules, "OPTIONS", origin="https://app.example", preflight="POST")
    assert result == Decision(Verdict.PREFLIGHT, "https://app.example")
    other = decide(rules, "OPTIONS", origin="https://evil.example", preflight="POST")
    assert other is Verdict.FORBIDDEN_ORIGIN


def test_options_without_origin_is_an_ordinary_request() -> None:
    assert decide(policy(), "OPTIONS", preflight="POST") is Verdict.PASS


# -- host --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "localhost:3456",
        "LOCALHOST:3456",
        "localhost.:3456",
        "127.0.0.1",
        "127.0.0.1:3456",
        "127.1.2.3:80",
        "[::1]",
        "[::1]:3456",
        "[0:0:0:0:0:0:0:1]:3456",
        "[::ffff:127.0.0.1]:3456",
    ],
)
def test_loopback_hosts_are_answered_with_and_without_a_port(host: str) -> None:
    assert decide(policy(), host=host) is Verdict.PASS
    assert decide(policy(host="192.168.1.5"), host=host) is Verdict.PASS


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:3456",
        "localhost.evil.example",
        "127.0.0.1.evil.example",
        "192.168.1.5:3456",
        "[2001:db8::1]:3456",
        "0.0.0.0:3456",
        "",
        "localhost:99999",
        "localhost:x",
        "[::1",
        "::1",
        "user@localhost",
        "local host",
    ],
)
def test_foreign_or_malformed_hosts_get_421(host: str) -> None:
    assert decide(policy(), host=host) is Verdict.MISDIRECTED


def test_421_comes_before_the_origin_and_body_checks() -> None:
    verdict = decide(policy(), "POST", host="evil.example:3456", origin="http://evil.example:3456")
    assert verdict is Verdict.MISDIRECTED


def test_a_rebinding_page_is_same_origin_under_its_own_name_and_still_refused() -> None:
    # The browser sends the attacker's name in both; only the Host check stops it.
    rules = policy(hosts="*")
    verdict = decide(
        rules,
        "POST",
        host="evil.example:3456",
        origin="http://evil.example:3456",
        content_type=JSON,
    )
    assert verdict is Verdict.FORBIDDEN_ORIGIN
    assert decide(rules, host="evil.example:3456") is Verdict.PASS  # `*`: the Host check is off


def test_a_host_sent_twice_gets_421() -> None:
    headers = BrowserHeaders(host=(LOCAL, LOCAL))
    assert policy().decide("GET", headers).verdict is Verdict.MISDIRECTED
    assert policy(hosts="*").decide("GET", headers).verdict is Verdict.MISDIRECTED


def test_no_host_header_is_not_a_browser_and_passes() -> None:
    assert decide(policy(), host=None) is Verdict.PASS


def test_the_bound_address_is_answered() -> None:
    assert decide(policy(host="192.168.1.5"), host="192.168.1.5:3456") is Verdict.PASS
    assert decide(policy(host="192.168.1.5"), host="192.168.1.6:3456") is Verdict.MISDIRECTED
    assert decide(policy(host="myhost.lan"), host="MyHost.lan:3456") is Verdict.PASS
    assert decide(policy(host="2001:db8::1"), host="[2001:db8::1]:3456") is Verdict.PASS
    assert decide(policy(host="[2001:db8::1]"), host="[2001:db8::1]") is Verdict.PASS


@pytest.mark.parametrize("bound", ["0.0.0.0", "::", "[::]", ""])
def test_a_wildcard_bind_answers_any_address_but_no_foreign_name(bound: str) -> None:
    rules = policy(host=bound)
    for host in ("192.168.1.5:3456", "10.0.0.1", "[2001:db8::1]:3456", "[fe80::1]"):
        assert decide(rules, host=host) is Verdict.PASS
    for host in ("evil.example:3456", "myhost.lan"):
        assert decide(rules, host=host) is Verdict.MISDIRECTED


def test_listed_hosts_are_answered_with_their_port_when_they_name_one() -> None:
    rules = policy(hosts="proxy.example, api.example:8443, [2001:db8::2]")
    assert decide(rules, host="proxy.example") is Verdict.PASS
    assert decide(rules, host="PROXY.example:443") is Verdict.PASS
    assert decide(rules, host="api.example:8443") is Verdict.PASS
    assert decide(rules, host="api.example:443") is Verdict.MISDIRECTED
    assert decide(rules, host="api.example") is Verdict.MISDIRECTED
    assert decide(rules, host="[2001:db8::2]:3456") is Verdict.PASS
    assert decide(rules, host="sub.proxy.example") is Verdict.MISDIRECTED


def test_a_page_behind_a_listed_proxy_host_is_same_origin() -> None:
    rules = policy(hosts="proxy.example")
    verdict = decide(
        rules, "POST", host="proxy.example", origin="https://proxy.example", content_type=JSON
    )
    assert verdict is Verdict.PASS


def test_a_star_switches_the_host_check_off() -> None:
    assert decide(policy(hosts="*"), host="anything.example:1") is Verdict.PASS


# -- parsing and settings ------------------------------------------------------------


def test_hosts_and_origins_parse_to_normal_forms() -> None:
    assert parse_host(" [::1]:80 ") == HostName("::1", 80)
    assert parse_host("Example.COM.") == HostName("example.com")
    assert parse_origin("HTTPS://App.Example/") == Origin("https", "app.example", 443)
    assert parse_origin("http://[::1]:3456") == Origin("http", "::1", 3456)
    assert parse_origin("chrome-extension://abcdef") == Origin("chrome-extension", "abcdef", None)
    for bad in ("null", "app.example", "https://user@app.example", "https://", "ftp//x"):
        assert parse_origin(bad) is None


def test_allow_lists_are_comma_separated_and_blank_entries_skipped() -> None:
    assert parse_allowed_origins(" https://a.example , ,http://b.example:81,") == {
        Origin("https", "a.example", 443),
        Origin("http", "b.example", 81),
    }
    assert parse_allowed_origins(None) == frozenset()
    assert parse_allowed_hosts("a.example, *") == ({HostName("a.example")}, True)
    assert parse_allowed_hosts("") == (frozenset(), False)


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--allowed-origins", "*", "every web page"),
        ("--allowed-origins", "app.example", "not an origin"),
        ("--allowed-origins", "null", "not an origin"),
        ("--allowed-hosts", "https://proxy.example/", "not a host"),
        ("--allowed-hosts", "proxy.example:port", "not a host"),
    ],
)
def test_malformed_allow_lists_are_refused_naming_the_setting(
    flag: str, value: str, says: str
) -> None:
    with pytest.raises(SettingsError, match=says) as raised:
        parse_serve_args([flag, value])
    assert flag in str(raised.value)
    env = "CLAUDE_PROXY_" + flag.removeprefix("--").replace("-", "_").upper()
    with pytest.raises(SettingsError, match=env):
        parse_serve_args([], environ={env: value})


def test_the_allow_lists_are_empty_by_default() -> None:
    settings = Settings()
    assert (settings.security.access.allowed_hosts, settings.security.access.allowed_origins) == (
        None,
        None,
    )
    rules = policy(
        settings.server.http.host,
        settings.security.access.allowed_hosts,
        settings.security.access.allowed_origins,
    )
    assert not rules.cors_enabled
