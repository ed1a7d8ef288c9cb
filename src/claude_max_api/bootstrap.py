"""The composition root: Settings in, a running app out.

The only proxy_http module that knows the concrete CLI runner and session store
(import-linter enforces it); everything else sees the core's ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import msgspec
import structlog
from litestar import Litestar

from claude_max_api.settings import Settings
from proxy_cli_backend.config import CliRunnerConfig
from proxy_cli_backend.diagnostics import Finding, diagnose
from proxy_cli_backend.live_runner import LiveCliRunner, LiveConfig
from proxy_cli_backend.oauth_token import TokenFileError, with_oauth_token
from proxy_cli_backend.response_store import DATABASE_NAME as RESPONSES_DATABASE_NAME
from proxy_cli_backend.response_store import ResponseStoreError, SqliteResponseStore
from proxy_cli_backend.runner import BackendStartupError, ClaudeCliRunner
from proxy_cli_backend.session_store import DATABASE_NAME, SessionStoreError, SqliteSessionStore
from proxy_cli_backend.spend_store import DATABASE_NAME as SPEND_DATABASE_NAME
from proxy_cli_backend.spend_store import SpendStoreError, SqliteSpendStore
from proxy_core import (
    BackendStatus,
    ChatService,
    ModelCatalog,
    ResponseStore,
    ServiceLimits,
    SessionStore,
    SpendStore,
)
from proxy_http.app import Lifespan, create_app
from proxy_http.auth import ApiKeyError, ApiKeys, api_keys_of
from proxy_http.config import HttpConfig
from proxy_http.layers import protect
from proxy_http.readiness import ReadinessProbe

__all__ = [
    "BackendStartupError",
    "Finding",
    "TokenFileError",
    "backend_findings",
    "build_app",
    "build_catalog",
    "build_limits",
    "build_response_store",
    "build_runner",
    "build_spend_store",
    "build_store",
    "http_app",
    "http_config",
    "instance_name",
    "kill_leftover_children",
    "load_oauth_token",
    "log_cli_state",
    "open_service",
    "readiness_checks",
    "runner_config",
]

log = structlog.get_logger("claude_max_api.bootstrap")


def runner_config(settings: Settings) -> CliRunnerConfig:
    """The CLI runner's configuration: the settings' own part, handed over whole."""
    return settings.backend.cli


def load_oauth_token(settings: Settings) -> Settings:
    """`settings` with the token of --oauth-token-file read, once, into the runner's
    config (unchanged without one); raises TokenFileError."""
    cli = settings.backend.cli
    loaded = with_oauth_token(cli)
    if loaded is cli:
        return settings
    return msgspec.structs.replace(
        settings, backend=msgspec.structs.replace(settings.backend, cli=loaded)
    )


def backend_findings(
    settings: Settings,
    *,
    environ: Mapping[str, str] | None = None,
    euid: Callable[[], int] = os.geteuid,
) -> list[Finding]:
    """The CLI backend's readiness checks (for `doctor`), an unusable token file first."""
    unusable: list[Finding] = []
    try:
        settings = load_oauth_token(settings)
    except TokenFileError as error:
        unusable.append(
            Finding(
                "oauth_token_file",
                False,
                str(error),
                "write the token `claude setup-token` printed into it, or unset "
                "--oauth-token-file / CLAUDE_PROXY_OAUTH_TOKEN_FILE",
            )
        )
    return [*unusable, *diagnose(runner_config(settings), environ=environ, euid=euid)]


def log_cli_state(status: BackendStatus, findings: Sequence[Finding]) -> None:
    """The start-up line: the CLI's path, version and login state, at info when it is
    logged in, else a warning carrying the fix (nothing without a local CLI)."""
    path = status.details.path if status.details is not None else None
    login = next((f for f in findings if f.name == "login"), None)
    if path is None or login is None:
        return
    if login.ok:
        log.info("cli_ready", path=path, version=status.version, login=login.detail)
    else:
        log.warning(
            "cli_not_logged_in",
            path=path,
            version=status.version,
            login=login.detail,
            fix=login.fix,
        )


def readiness_checks(service: ChatService, settings: Settings) -> Callable[[], list[Finding]]:
    """The setup checks /health reports. Their first run, which the app starts with the
    server, also writes the start-up line (`log_cli_state`): one `claude auth status`
    serves both, and the start waits for neither."""
    first = True

    def checks() -> list[Finding]:
        nonlocal first
        findings = backend_findings(settings)
        if first:
            first = False
            log_cli_state(service.runner.status(), findings)
        return findings

    return checks


def live_config(settings: Settings, catalog: ModelCatalog) -> LiveConfig:
    """Live processes and the warm pool; the pool starts with the default model, as
    `catalog` (the service's own) resolves it."""
    pool_model = catalog.resolve(settings.models.default_model).cli_model
    return msgspec.structs.replace(settings.live.processes, pool_model=pool_model)


def build_runner(settings: Settings, catalog: ModelCatalog) -> ClaudeCliRunner | LiveCliRunner:
    """Live processes per conversation, or a process per turn with `spawn_per_turn`;
    `catalog` is the service's, so the warm pool starts with the model turns resolve to."""
    if settings.live.spawn_per_turn:
        return ClaudeCliRunner(runner_config(settings))
    live_max = settings.live.processes.max_live
    if settings.limits.max_concurrent > live_max:
        # Valid, but the smaller one rules: say so once rather than surprise at load.
        log.warning(
            "live_max_below_max_concurrent",
            live_max=live_max,
            max_concurrent=settings.limits.max_concurrent,
            effect="turns beyond --live-max wait for a CLI process to be free",
        )
    return LiveCliRunner(runner_config(settings), live_config(settings, catalog))


def build_limits(settings: Settings) -> ServiceLimits:
    """The service's limits: the settings' own part, handed over whole."""
    return settings.limits


def build_catalog(settings: Settings) -> ModelCatalog:
    """The model catalog: the default model, strictness and overrides of the settings."""
    models = settings.models
    return ModelCatalog(default=models.default_model, strict=models.strict_models).with_overrides(
        models.model_overrides
    )


def build_store(settings: Settings) -> SessionStore:
    """The session store `serve` uses: SQLite at --sessions-db, else in the state dir.

    A TTL of 0 or less keeps idle conversations forever; `:memory:` keeps them until
    the server stops. A database that cannot be opened stops the start-up.
    """
    sessions = settings.sessions
    path = sessions.sessions_db or str(Path(settings.backend.cli.state_dir) / DATABASE_NAME)
    try:
        return SqliteSessionStore(
            path,
            ttl_seconds=sessions.session_ttl if sessions.session_ttl > 0 else None,
            max_sessions=sessions.max_sessions,
        )
    except (SessionStoreError, ValueError) as error:
        raise BackendStartupError(str(error)) from error


def build_response_store(settings: Settings) -> ResponseStore:
    """The store of Responses API replies: SQLite at --responses-db, else in the state
    dir. A TTL of 0 or less keeps replies until the count cap evicts them. A database
    that cannot be opened stops the start-up."""
    sessions = settings.sessions
    path = sessions.responses_db or str(
        Path(settings.backend.cli.state_dir) / RESPONSES_DATABASE_NAME
    )
    try:
        return SqliteResponseStore(
            path,
            ttl_seconds=sessions.response_ttl if sessions.response_ttl > 0 else None,
            max_responses=sessions.max_responses,
        )
    except (ResponseStoreError, ValueError) as error:
        raise BackendStartupError(str(error)) from error


def build_spend_store(settings: Settings) -> SpendStore:
    """The store of what each key spent: SQLite at --spend-db, else in the state dir.
    A database that cannot be opened stops the start-up (budgets would not hold)."""
    path = settings.sessions.spend_db or str(
        Path(settings.backend.cli.state_dir) / SPEND_DATABASE_NAME
    )
    try:
        return SqliteSpendStore(path)
    except SpendStoreError as error:
        raise BackendStartupError(str(error)) from error


def response_store_lifespan(
    store: ResponseStore, interval: float
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """Sweeps expired stored replies every `interval` seconds while the app lives (0:
    never); closes the store when it stops."""

    async def sweep_periodically() -> None:
        if interval <= 0:
            return
        while True:
            await asyncio.sleep(interval)
            try:
                removed = await store.sweep()
            except Exception as error:  # one failed sweep must not end the server
                log.warning("response_sweep_failed", error=repr(error))
            else:
                log.debug("responses_swept", removed=removed)

    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        sweeper = asyncio.create_task(sweep_periodically())
        try:
            yield
        finally:
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)
            await store.close()

    return lifespan


async def open_service(settings: Settings, *, keys: ApiKeys | None = None) -> ChatService:
    """Build the service and start its runner; raises BackendStartupError on a fatal problem.

    The stores open first: a database that cannot be opened then leaves no CLI
    process (warm pool) behind, and a runner that cannot start closes the stores.
    The token of --oauth-token-file is read here unless the caller read it already.
    The budgets of the key file are enforced: from `keys` (the ones the server
    serves), else read from `settings` (a key file that cannot be used stops it).
    """
    try:
        settings = load_oauth_token(settings)
    except TokenFileError as error:
        raise BackendStartupError(f"--oauth-token-file: {error}") from None
    if keys is None:
        try:
            keys = api_keys_of(settings.security.access)
        except ApiKeyError as error:
            raise BackendStartupError(str(error)) from None
    store = build_store(settings)
    try:
        spend = build_spend_store(settings)
    except BaseException:
        await store.close()
        raise
    catalog = build_catalog(settings)  # once: the service and the warm pool share it
    runner = build_runner(settings, catalog)
    try:
        await runner.start()
    except BaseException:
        await runner.aclose()
        await store.close()
        await spend.close()
        raise
    return ChatService(
        runner,
        store,
        catalog=catalog,
        limits=build_limits(settings),
        spend=spend,
        budgets=keys.budgets,
    )


async def _sweep_periodically(service: ChatService, interval: float, grace: float) -> None:
    """Every `interval` seconds: expire idle conversations, then delete the transcripts
    that no conversation points to any more."""
    if interval <= 0:
        return
    while True:
        await asyncio.sleep(interval)
        await _sweep_sessions(service.store)
        await sweep_transcripts(service, grace)


async def _sweep_sessions(store: SessionStore) -> None:
    """Expire idle conversations; a failure is logged, never raised."""
    try:
        removed = await store.sweep()
    except Exception as error:  # one failed sweep must not end the server
        log.warning("session_sweep_failed", error=repr(error))
    else:
        log.debug("sessions_swept", removed=removed)


async def sweep_transcripts(service: ChatService, grace: float) -> int:
    """One sweep of the transcripts no conversation points to (0 grace: none).

    A failure is logged, never raised: the next sweep tries again.
    """
    if grace <= 0:
        return 0
    try:
        removed = await service.sweep_orphans(grace=grace)
    except Exception as error:
        log.warning("transcript_sweep_failed", error=repr(error))
        return 0
    if removed:
        log.info("orphaned_transcripts_deleted", count=removed)
    return removed


def service_lifespan(
    service: ChatService, settings: Settings
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """Sweeps orphaned transcripts before serving, then sweeps conversations and
    transcripts while the app lives; closes the service when it stops."""

    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        sessions = settings.sessions
        await sweep_transcripts(service, sessions.transcript_grace)
        sweeper = asyncio.create_task(
            _sweep_periodically(service, sessions.session_sweep_interval, sessions.transcript_grace)
        )
        watch = asyncio.create_task(
            service.runner.watch(settings.backend.watchdog_interval)
            if settings.backend.watchdog_interval > 0
            else asyncio.sleep(0)
        )
        try:
            yield
        finally:
            for task in (sweeper, watch):
                task.cancel()
            await asyncio.gather(sweeper, watch, return_exceptions=True)
            await service.aclose()
            # The runner ended its processes; whatever it tracked and is left is an orphan.
            killed = service.runner.kill_orphans()
            if killed:
                log.warning("orphans_killed_at_shutdown", count=killed)

    return lifespan


def kill_leftover_children(service: ChatService) -> int:
    """Last step of `serve`: kill every process this server started that still lives.

    Covers whatever a runner did not register; only `serve` may call it, since it
    kills every descendant of the current process.
    """
    return service.runner.kill_orphans(root=os.getpid())


def instance_name(settings: Settings) -> str:
    """The name every response carries in `X-Proxy-Instance`: --instance-name, else
    `<hostname>:<port>`, which tells apart the instances of one machine and of many."""
    return settings.server.instance_name or f"{socket.gethostname()}:{settings.server.port}"


def http_config(settings: Settings) -> HttpConfig:
    """What the HTTP adapter reads: the settings' HTTP and access parts, handed over
    whole, and the instance's name."""
    return HttpConfig(
        http=settings.server.http,
        security=settings.security.access,
        instance=instance_name(settings),
    )


def http_app(
    service: ChatService,
    settings: Settings,
    *,
    keys: ApiKeys | None = None,
    lifespan: Sequence[Lifespan] = (),
    readiness: ReadinessProbe | None = None,
    responses: ResponseStore | None = None,
) -> Litestar:
    """The HTTP adapter over `service`, behind the ASGI layers `settings` configure.

    What `serve` runs, and what an embedding application or a test builds to get the
    same protected app. It requires `keys`; without them it reads the keys `settings`
    configure, and raises ApiKeyError when the key file cannot be read. `responses`
    keeps the Responses API's stored replies (None: in memory, see `create_app`).
    The keys' budgets are the service's own (`open_service` gives it those of the
    same keys).
    """
    config = http_config(settings)
    if keys is None:
        keys = api_keys_of(config.security)
    app = create_app(service, config, lifespan=lifespan, readiness=readiness, responses=responses)
    return protect(app, config, keys=keys, retry_after=service.limits.busy_retry_after)


def build_app(service: ChatService, settings: Settings, *, keys: ApiKeys) -> Litestar:
    """The served app: the protected HTTP adapter over `service`, requiring `keys` (the
    ones `serve` loaded and judged before starting), closing the service on shutdown.
    It opens the store of Responses API replies (raises BackendStartupError when it
    cannot), which it sweeps and closes with the app."""
    responses = build_response_store(settings)
    return http_app(
        service,
        settings,
        keys=keys,
        lifespan=[
            service_lifespan(service, settings),
            response_store_lifespan(responses, settings.sessions.session_sweep_interval),
        ],
        readiness=ReadinessProbe(readiness_checks(service, settings)),
        responses=responses,
    )
