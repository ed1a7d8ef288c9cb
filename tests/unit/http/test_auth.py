"""API keys: loading, constant-time matching, the headers they come in, the exposure rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from claude_max_api.settings import Settings
from proxy_http.auth import (
    ApiKeyError,
    ApiKeys,
    Caller,
    exposure_refusal,
    full_tools_warning,
    is_loopback,
    key_id,
    load_api_keys,
    presented_key,
)


def test_keys_from_a_comma_list_are_trimmed_and_blank_ones_dropped() -> None:
    keys = load_api_keys(" alpha , ,beta,")
    assert len(keys) == 2
    assert keys.accepts("alpha")
    assert keys.accepts("beta")


def test_keys_from_a_file_skip_blank_lines_and_comments(tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text("# team keys\n\nfile-key-1\n  file-key-2  \n")
    keys = load_api_keys("setting-key", str(key_file))
    assert [keys.accepts(k) for k in ("setting-key", "file-key-1", "file-key-2")] == [True] * 3
    assert not keys.accepts("# team keys")


def test_a_missing_key_file_is_an_error_not_an_open_server(tmp_path: Path) -> None:
    with pytest.raises(ApiKeyError, match="Cannot read"):
        load_api_keys(None, str(tmp_path / "absent"))


def test_a_key_file_without_keys_is_an_error(tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text("# nothing yet\n\n")
    with pytest.raises(ApiKeyError, match="holds no key"):
        load_api_keys(None, str(key_file))


def test_wrong_empty_and_prefix_keys_are_refused() -> None:
    keys = ApiKeys(["s3cret-key"])
    assert not keys.accepts("s3cret")
    assert not keys.accepts("s3cret-key2")
    assert not keys.accepts("")
    assert not keys.accepts(None)


def test_no_keys_means_falsy_and_nothing_accepted() -> None:
    keys = load_api_keys("")
    assert not keys
    assert not keys.accepts("anything")


def test_keys_never_show_in_their_repr() -> None:
    keys = ApiKeys(["top-secret-value"])
    assert "top-secret-value" not in repr(keys)
    assert "1 keys" in repr(keys)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(b"authorization", b"Bearer k1")], "k1"),
        ([(b"Authorization", b"bearer   k1  ")], "k1"),
        ([(b"x-api-key", b"k2")], "k2"),
        ([(b"authorization", b"Basic dXNlcjpwYXNz")], None),
        ([(b"authorization", b"Bearer ")], None),
        ([], None),
    ],
)
def test_the_key_comes_from_bearer_or_x_api_key(
    headers: list[tuple[bytes, bytes]], expected: str | None
) -> None:
    assert presented_key(headers) == expected


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "[::1]", "127.1.2.3"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com"])
def test_non_loopback_hosts(host: str) -> None:
    assert not is_loopback(host)


def test_exposure_without_keys_is_refused_and_says_why() -> None:
    reason = exposure_refusal("0.0.0.0", ApiKeys([]), allow_unauthenticated=False)
    assert reason is not None
    assert "without API keys" in reason
    assert "--allow-unauthenticated" in reason


@pytest.mark.parametrize(
    ("host", "keys", "allow"),
    [("127.0.0.1", [], False), ("0.0.0.0", ["k"], False), ("0.0.0.0", [], True)],
)
def test_exposure_is_allowed_on_loopback_with_keys_or_by_opt_in(
    host: str, keys: list[str], allow: bool
) -> None:
    assert exposure_refusal(host, ApiKeys(keys), allow_unauthenticated=allow) is None


def test_full_tools_on_the_network_gets_a_warning_only_there() -> None:
    assert full_tools_warning("0.0.0.0", full_tools=True) is not None
    assert full_tools_warning("127.0.0.1", full_tools=True) is None
    assert full_tools_warning("0.0.0.0", full_tools=False) is None


def test_an_accepted_key_identifies_its_caller_by_a_stable_id_that_is_not_the_key() -> None:
    keys = load_api_keys("key-a,key-b", admin_keys="key-admin")
    a, b = keys.identify("key-a"), keys.identify("key-b")
    assert a == Caller(key_id("key-a"), admin=False)
    assert b == Caller(key_id("key-b"), admin=False)
    assert a != b
    assert keys.identify("key-a") == a  # the same id every time
    assert load_api_keys(["key-a"]).identify("key-a") == a  # and in another server
    assert "key-a" not in a.key_id
    assert len(a.key_id) == 16


def test_admin_keys_are_accepted_keys_that_identify_as_admin() -> None:
    keys = load_api_keys("key-a,shared", admin_keys="key-admin, shared")
    assert keys.identify("key-admin") == Caller(key_id("key-admin"), admin=True)
    assert keys.accepts("key-admin")
    assert keys.identify("shared") == Caller(key_id("shared"), admin=True)
    assert len(keys) == 3
    only_admins = load_api_keys(None, admin_keys="key-admin")
    assert only_admins  # admin keys alone turn authentication on
    assert only_admins.identify("key-a") is None


def test_a_wrong_or_missing_key_identifies_nobody() -> None:
    keys = load_api_keys("key-a", admin_keys="key-admin")
    for presented in (None, "", "key-", "key-a ", "KEY-A", "key-admin2"):
        assert keys.identify(presented) is None


def test_admin_keys_never_show_in_a_settings_dump() -> None:
    settings = Settings.from_values(api_keys="user-secret-1", admin_api_keys="admin-secret-2")
    shown = repr(settings)
    assert "user-secret-1" not in shown
    assert "admin-secret-2" not in shown
    assert "admin_api_keys=<hidden>" in shown
