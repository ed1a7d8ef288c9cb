"""The composition root hands the settings' sections over whole: no field is copied."""

from __future__ import annotations

from claude_max_api.bootstrap import (
    build_catalog,
    build_limits,
    http_config,
    live_config,
    runner_config,
)
from claude_max_api.settings import Settings


def test_each_part_gets_its_section_object_itself() -> None:
    settings = Settings.from_values(
        host="0.0.0.0", api_keys="k", max_images=3, tools="read-only", live_max=2
    )
    assert runner_config(settings) is settings.backend.cli
    assert build_limits(settings) is settings.limits
    config = http_config(settings)
    assert config.http is settings.server.http
    assert config.security is settings.security.access


def test_the_live_config_is_its_section_plus_the_pool_model_only() -> None:
    settings = Settings.from_values(live_max=2, pool_size=0, default_model="opus")
    live = live_config(settings, build_catalog(settings))
    section = settings.live.processes
    differing = {
        name for name in section.__struct_fields__ if getattr(live, name) != getattr(section, name)
    }
    assert differing == {"pool_model"}
    assert (live.max_live, live.pool_size) == (2, 0)
