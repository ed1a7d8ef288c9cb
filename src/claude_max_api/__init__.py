"""claude_max_api: the application that wires the adapters around the core.

It holds the settings (declared once), the composition root (`bootstrap`) and the
`claude-max-api` command line (serve, doctor, setup-openclaw). Only this package
imports both `proxy_http` and `proxy_cli_backend`. An app that wants the server's
exact wiring in-process: `settings = load_settings(...)` (or `Settings()`), then
`service = await open_service(settings)` and `http_app(service, settings)`.
"""

from claude_max_api.bootstrap import build_runner, http_app, open_service, service_lifespan
from claude_max_api.cli import main
from claude_max_api.settings import Settings, SettingsError, load_settings, parse_serve_args

__all__ = [
    "Settings",
    "SettingsError",
    "build_runner",
    "http_app",
    "load_settings",
    "main",
    "open_service",
    "parse_serve_args",
    "service_lifespan",
]
