"""The argv and environment of a turn."""

from __future__ import annotations

import json

import msgspec
import pytest

from proxy_cli_backend.command import (
    EXCLUDE_DYNAMIC_SECTIONS,
    NO_MEMORY_ENV,
    CliCommand,
    RootToolsRefused,
    build_command,
    child_env,
    tool_args,
)
from proxy_cli_backend.config import CliRunnerConfig, parse_tools
from proxy_cli_backend.live_runner import LiveConfig
from proxy_core import ChoiceMode, ClientTool, Effort, PlanKind, TextBlock, ToolOffer, TurnPlan

SID = "11111111-2222-3333-4444-555555555555"


def plan(kind: PlanKind = PlanKind.NEW, **fields: object) -> TurnPlan:
    values: dict[str, object] = {
        "kind": kind,
        "session_key": "k",
        "cli_session_id": SID,
        "model": "sonnet",
        "system": None,
        "prompt": (TextBlock("hi"),),
        "messages": (),
        "seen": (),
    }
    values.update(fields)
    return TurnPlan(**values)  # type: ignore[arg-type]


def argv(turn: TurnPlan, **settings: object) -> list[str]:
    config = CliRunnerConfig(state_dir="/state", **settings)  # type: ignore[arg-type]
    return list(build_command("/bin/claude", turn, config, base_env={}, is_root=False).argv)


def test_a_new_turn_names_its_session_and_streams_json_both_ways() -> None:
    assert argv(plan()) == [
        "/bin/claude",
        "-p",
        "--input-format",
        "stream-json",
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
        "--model",
        "sonnet",
        "--session-id",
        SID,
        "--exclude-dynamic-system-prompt-sections",
        "--tools",
        "",
    ]


def test_the_plans_effort_is_passed_and_wins_over_the_default() -> None:
    args = argv(plan(effort=Effort.XHIGH), effort=Effort.LOW)
    assert args[args.index("--effort") + 1] == "xhigh"


def test_without_a_plan_effort_the_configured_default_is_passed() -> None:
    args = argv(plan(PlanKind.CONTINUE), effort=Effort.HIGH)
    assert args[args.index("--effort") + 1] == "high"


def test_a_reply_schema_is_passed_as_json_schema_and_only_then() -> None:
    args = argv(plan(json_schema='{"type":"object"}'))
    assert args[args.index("--json-schema") + 1] == '{"type":"object"}'
    assert "--json-schema" not in argv(plan())


def test_a_cost_cap_is_passed_as_max_budget_usd_and_only_then() -> None:
    args = argv(plan(PlanKind.CONTINUE), max_budget_usd=0.25)
    assert args[args.index("--max-budget-usd") + 1] == "0.25"
    assert "--max-budget-usd" not in argv(plan())


@pytest.mark.parametrize("cap", [0, -1.5])
def test_a_cost_cap_of_zero_or_less_is_refused(cap: float) -> None:
    with pytest.raises(msgspec.ValidationError, match="max_budget_usd must be more than 0"):
        msgspec.convert({"max_budget_usd": cap}, CliRunnerConfig)


def test_without_any_effort_the_clis_default_stays() -> None:
    assert "--effort" not in argv(plan())


def test_a_restart_also_starts_a_new_session() -> None:
    assert "--session-id" in argv(plan(PlanKind.RESTART))


def test_a_continue_resumes_and_has_no_session_id() -> None:
    args = argv(plan(PlanKind.CONTINUE))
    assert args[args.index("--resume") + 1] == SID
    assert "--session-id" not in args
    assert "--resume-session-at" not in args


def test_a_continue_with_a_resume_point_resumes_at_it() -> None:
    args = argv(plan(PlanKind.CONTINUE, resume_point="a-9"))
    assert args[args.index("--resume-session-at") + 1] == "a-9"


def test_a_resume_point_is_ignored_for_a_new_session() -> None:
    assert "--resume-session-at" not in argv(plan(PlanKind.RESTART, resume_point="a-9"))


def test_the_system_prompt_is_passed_when_there_is_one() -> None:
    args = argv(plan(system="be brief"))
    assert args[args.index("--system-prompt") + 1] == "be brief"
    assert "--system-prompt" not in argv(plan())


@pytest.mark.parametrize(
    "turn",
    [
        plan(),
        plan(system=""),
        plan(PlanKind.CONTINUE),
        plan(tools=ToolOffer((ClientTool("get_time"),))),
    ],
    ids=["new", "empty system", "continue", "client tools"],
)
def test_with_the_clis_default_system_prompt_its_dynamic_sections_are_excluded(
    turn: TurnPlan,
) -> None:
    assert EXCLUDE_DYNAMIC_SECTIONS in argv(turn)


@pytest.mark.parametrize("system", ["be brief", "x" * 200_000], ids=["argv", "file"])
def test_with_a_client_system_prompt_the_flag_the_cli_ignores_is_not_passed(system: str) -> None:
    assert EXCLUDE_DYNAMIC_SECTIONS not in argv(plan(system=system))


@pytest.mark.parametrize("tools", ["none", "read-only", "Read,Grep", "full", "Read,Write", "Bash"])
def test_the_clis_file_memory_is_off_whatever_the_tools(tools: str) -> None:
    # One working directory serves every conversation: memory kept in one would be
    # loaded into all the others.
    config = CliRunnerConfig(state_dir="/s", tools=tools, allow_root_tools=True)
    env = build_command("c", plan(), config, base_env={}, is_root=False).env
    assert env[NO_MEMORY_ENV] == "1"


def test_the_operators_own_memory_setting_wins() -> None:
    config = CliRunnerConfig(state_dir="/s", extra_env={NO_MEMORY_ENV: "0"})
    env = build_command("c", plan(), config, base_env={}, is_root=False).env
    assert env[NO_MEMORY_ENV] == "0"


@pytest.mark.parametrize(
    ("tools", "flags"),
    [
        ("none", ("--tools", "")),
        ("", ("--tools", "")),
        ("read-only", ("--tools", "Read,Glob,Grep,WebSearch,WebFetch")),
        ("full", ("--dangerously-skip-permissions",)),
        ("Read, Grep", ("--tools", "Read,Grep")),
    ],
)
def test_tools_profiles_become_flags(tools: str, flags: tuple[str, ...]) -> None:
    assert tool_args(parse_tools(tools)) == flags


@pytest.mark.parametrize(
    ("tools", "full"),
    [(" full ", True), ("full", True), ("read-only", False), ("", False), ("Bash,Edit", False)],
)
def test_only_the_full_profile_counts_as_full_tools(tools: str, full: bool) -> None:
    assert CliRunnerConfig(state_dir="/s", tools=tools).full_tools is full


def test_the_working_directory_defaults_under_the_state_dir() -> None:
    config = CliRunnerConfig(state_dir="/state")
    command = build_command("/bin/claude", plan(), config, base_env={}, is_root=False)
    assert command.cwd == "/state/workdir"
    explicit = CliRunnerConfig(state_dir="/state", workdir="/srv/w")
    assert build_command("c", plan(), explicit, base_env={}, is_root=False).cwd == "/srv/w"


def test_the_environment_is_the_allowed_part_of_the_inherited_one_plus_extras() -> None:
    config = CliRunnerConfig(
        state_dir="/s", extra_env={"HOME": "/h", "X": "1"}, upstream_retries=None
    )
    env = child_env(config, {"PATH": "/bin", "CLAUDECODE": "1", "HOME": "/root"}, is_root=False)
    assert env == {"PATH": "/bin", "HOME": "/h", "X": "1"}


def test_our_own_settings_and_secrets_never_reach_the_cli() -> None:
    config = CliRunnerConfig(state_dir="/s", upstream_retries=None)
    base = {
        "CLAUDE_PROXY_API_KEYS": "sk-secret",
        "CLAUDE_PROXY_API_KEY_FILE": "/etc/keys",
        "CLAUDE_PROXY_ADMIN_API_KEYS": "admin-secret",
        "CLAUDE_PROXY_TOOLS": "full",
        "PORT": "3456",
        "DATABASE_URL": "postgres://user:pw@db/x",
        "GITHUB_TOKEN": "ghp_x",
        "SSH_AUTH_SOCK": "/tmp/agent",
        "CLAUDECODE": "1",
        "PATH": "/bin",
    }
    assert child_env(config, base, is_root=False) == {"PATH": "/bin"}


@pytest.mark.parametrize(
    "name",
    [
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LC_ALL",
        "LC_CTYPE",
        "TZ",
        "TERM",
        "TMPDIR",
        "XDG_CONFIG_HOME",
        "HTTP_PROXY",
        "https_proxy",
        "NO_PROXY",
        "no_proxy",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "NODE_EXTRA_CA_CERTS",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_VERTEX_PROJECT_ID",
        "CLAUDE_CODE_USE_BEDROCK",
        "CLAUDE_CODE_OAUTH_TOKEN",
        "CLAUDE_CONFIG_DIR",
        "AWS_REGION",
        "AWS_PROFILE",
        "AWS_BEARER_TOKEN_BEDROCK",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "CLOUD_ML_REGION",
        "VERTEX_REGION_CLAUDE_3_5_HAIKU",
        "DISABLE_TELEMETRY",
        "MCP_TIMEOUT",
        "MAX_THINKING_TOKENS",
        "BASH_DEFAULT_TIMEOUT_MS",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "API_TIMEOUT_MS",
    ],
)
def test_what_the_cli_needs_is_passed_on(name: str) -> None:
    config = CliRunnerConfig(state_dir="/s", upstream_retries=None)
    assert child_env(config, {name: "v"}, is_root=False) == {name: "v"}


def test_the_operators_extra_env_is_added_even_beyond_the_allow_list() -> None:
    config = CliRunnerConfig(
        state_dir="/s", extra_env={"SSH_AUTH_SOCK": "/a"}, upstream_retries=None
    )
    assert child_env(config, {"SSH_AUTH_SOCK": "/b"}, is_root=False) == {"SSH_AUTH_SOCK": "/a"}


def test_upstream_retries_bound_the_clis_own_retries() -> None:
    assert child_env(CliRunnerConfig(state_dir="/s"), {}, is_root=False) == {
        "CLAUDE_CODE_MAX_RETRIES": "2"
    }
    config = CliRunnerConfig(state_dir="/s", upstream_retries=0)
    assert child_env(config, {}, is_root=False)["CLAUDE_CODE_MAX_RETRIES"] == "0"


def test_an_explicit_max_retries_variable_wins_over_upstream_retries() -> None:
    config = CliRunnerConfig(state_dir="/s", upstream_retries=5)
    inherited = child_env(config, {"CLAUDE_CODE_MAX_RETRIES": "7"}, is_root=False)
    assert inherited["CLAUDE_CODE_MAX_RETRIES"] == "7"
    extra = CliRunnerConfig(
        state_dir="/s", upstream_retries=5, extra_env={"CLAUDE_CODE_MAX_RETRIES": "1"}
    )
    assert child_env(extra, {}, is_root=False)["CLAUDE_CODE_MAX_RETRIES"] == "1"


def test_full_tools_as_root_without_opt_in_is_refused_naming_both_fixes() -> None:
    config = CliRunnerConfig(state_dir="/s", tools="full")
    with pytest.raises(RootToolsRefused, match="non-root") as refused:
        child_env(config, {}, is_root=True)
    assert "allow_root_tools" in str(refused.value)


def test_full_tools_as_root_with_opt_in_sets_is_sandbox() -> None:
    config = CliRunnerConfig(state_dir="/s", tools="full", allow_root_tools=True)
    assert child_env(config, {}, is_root=True)["IS_SANDBOX"] == "1"


def test_is_sandbox_is_not_set_otherwise() -> None:
    config = CliRunnerConfig(state_dir="/s", tools="full", allow_root_tools=True)
    assert "IS_SANDBOX" not in child_env(config, {}, is_root=False)
    assert "IS_SANDBOX" not in child_env(CliRunnerConfig(state_dir="/s"), {}, is_root=True)


def test_a_system_prompt_too_long_for_argv_goes_through_a_file() -> None:
    long = "x" * 200_000
    config = CliRunnerConfig(state_dir="/state")
    command = build_command("c", plan(system=long), config, base_env={}, is_root=False)
    assert "--system-prompt" not in command.argv
    path = command.argv[command.argv.index("--system-prompt-file") + 1]
    assert path.startswith("/state/prompts/")
    assert command.files == {path: long}
    assert build_command("c", plan(system="short"), config, base_env={}, is_root=False).files == {}


WEATHER = ClientTool("get_weather", "The weather of a city.")
TIME = ClientTool("get_time")


def command(turn: TurnPlan) -> CliCommand:
    config = CliRunnerConfig(state_dir="/state")
    return build_command("/bin/claude", turn, config, base_env={"PATH": "/bin"}, is_root=False)


def flag(args: list[str] | tuple[str, ...], name: str) -> str:
    assert args.count(name) == 1, f"{name} once in {args}"
    return args[args.index(name) + 1]


def longest_suspension() -> float:
    """The highest `suspended_timeout` the settings accept (seconds)."""
    info = msgspec.inspect.type_info(LiveConfig)
    assert isinstance(info, msgspec.inspect.StructType)
    (field,) = [f for f in info.fields if f.name == "suspended_timeout"]
    kind = field.type.type if isinstance(field.type, msgspec.inspect.Metadata) else field.type
    assert isinstance(kind, msgspec.inspect.FloatType)
    assert kind.le is not None
    return kind.le


def test_offered_client_tools_are_served_by_an_sdk_server_and_allowed_by_name() -> None:
    built = command(plan(tools=ToolOffer((WEATHER, TIME))))
    config = json.loads(flag(built.argv, "--mcp-config"))
    (server,) = config["mcpServers"].values()
    assert server["type"] == "sdk"
    assert server["name"] == "client"
    # The CLI waits longer for a call than a suspended turn may be kept.
    assert server["timeout"] > longest_suspension() * 1000
    assert flag(built.argv, "--allowedTools") == "mcp__client__get_weather,mcp__client__get_time"
    # The built-in tools stay as the profile says.
    assert flag(built.argv, "--tools") == ""
    assert built.env["ENABLE_TOOL_SEARCH"] == "false"


def test_a_named_choice_offers_only_that_tool() -> None:
    offer = ToolOffer((WEATHER, TIME), ChoiceMode.FUNCTION, "get_time")
    assert flag(command(plan(tools=offer)).argv, "--allowedTools") == "mcp__client__get_time"


@pytest.mark.parametrize(
    "tools", [None, ToolOffer((WEATHER,), ChoiceMode.NONE)], ids=["no tools", "choice none"]
)
def test_without_tools_to_offer_there_are_no_mcp_flags(tools: ToolOffer | None) -> None:
    built = command(plan(tools=tools))
    assert not {"--mcp-config", "--allowedTools"} & set(built.argv)
    assert "ENABLE_TOOL_SEARCH" not in built.env
