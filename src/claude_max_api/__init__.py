"""claude_max_api: the application that wires the adapters around the core.

It holds the settings (declared once), the composition root (`bootstrap`) and the
`claude-max-api` command line (serve, doctor, setup-openclaw). Only this package
imports both `proxy_http` and `proxy_cli_backend`.
"""
