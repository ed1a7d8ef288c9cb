"""The HTTP adapter's own config: secrets stay out of its dumps."""

from __future__ import annotations

from proxy_http.config import HttpConfig, SecurityOptions


def test_a_config_dump_hides_the_api_keys() -> None:
    config = HttpConfig(security=SecurityOptions(api_keys="user-k-1", admin_api_keys="adm-k-2"))
    shown = repr(config)
    assert "user-k-1" not in shown
    assert "adm-k-2" not in shown
    assert "api_keys=<hidden>" in shown
    assert "admin_api_keys=<hidden>" in shown


def test_an_unset_key_shows_as_none() -> None:
    assert "api_keys=None" in repr(SecurityOptions())
