"""parse_tool_offer: a request's tools, tool_choice and legacy functions as one ToolOffer,
and a 400 naming the field for every definition the upstream would refuse."""

from __future__ import annotations

from typing import Any

import pytest

from proxy_core.errors import ChatError, FailureReason
from proxy_core.openai_wire import (
    FunctionDefinition,
    FunctionTool,
    NamedToolChoice,
    ToolChoiceFunction,
)
from proxy_core.tools import MAX_TOOLS, ChoiceMode, ToolOffer, parse_tool_offer


def tool(name: str, parameters: object = None, **extra: object) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name, **extra}
    if parameters is not None:
        function["parameters"] = parameters
    return {"type": "function", "function": function}


def named(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name}}


def offer(*args: Any, **kwargs: Any) -> ToolOffer:
    parsed = parse_tool_offer(*args, **kwargs)
    assert parsed is not None
    return parsed


def error_of(*args: Any, **kwargs: Any) -> ChatError:
    with pytest.raises(ChatError) as caught:
        parse_tool_offer(*args, **kwargs)
    assert caught.value.reason is FailureReason.INVALID_REQUEST
    return caught.value


OBJECT = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}


def test_no_tools_is_no_offer() -> None:
    assert parse_tool_offer() is None
    assert parse_tool_offer([]) is None
    assert parse_tool_offer(None, "auto") is None
    assert parse_tool_offer([], "none") is None
    assert parse_tool_offer(functions=[], function_call="auto") is None


def test_a_definition_is_kept_as_given() -> None:
    parsed = offer([tool("lookup", OBJECT, description="Find q.", strict=True)])
    (only,) = parsed.tools
    assert (only.name, only.description, only.parameters, only.strict) == (
        "lookup",
        "Find q.",
        OBJECT,
        True,
    )
    assert (parsed.choice, parsed.forced, parsed.parallel, parsed.legacy) == (
        ChoiceMode.AUTO,
        None,
        True,
        False,
    )
    assert parsed.offered == parsed.tools
    assert not parsed.must_call
    assert parsed.max_calls is None


def test_typed_tools_and_choice_parse_as_their_json_does() -> None:
    typed = parse_tool_offer(
        [FunctionTool(FunctionDefinition("lookup", "Find q.", OBJECT))],
        NamedToolChoice(ToolChoiceFunction("lookup")),
    )
    plain = parse_tool_offer([tool("lookup", OBJECT, description="Find q.")], named("lookup"))
    assert typed == plain


def test_a_schema_without_a_type_is_given_type_object() -> None:
    (empty,) = offer([tool("f", {})]).tools
    assert empty.parameters == {"type": "object"}
    untyped = {"properties": {"a": {"type": "integer"}}}
    (f,) = offer([tool("f", untyped)]).tools
    assert f.parameters == {"type": "object", "properties": {"a": {"type": "integer"}}}


def test_no_parameters_is_an_object_schema_with_no_properties() -> None:
    (f,) = offer([tool("f")]).tools
    assert f.parameters == {"type": "object", "properties": {}}


@pytest.mark.parametrize(
    "name", ["", "has space", "dots.are.not", "x" * 65, "tab\t", "trailing\n", "ünï"]
)
def test_a_bad_name_is_refused_naming_its_field(name: str) -> None:
    error = error_of([tool("ok"), tool(name)])
    assert error.param == "tools[1].function.name"
    assert "^[a-zA-Z0-9_-]{1,64}$" in error.message


@pytest.mark.parametrize("name", ["a", "x" * 64, "get_weather", "Get-Weather-2"])
def test_a_good_name_is_accepted(name: str) -> None:
    assert offer([tool(name)]).tools[0].name == name


@pytest.mark.parametrize("parameters", [[], ["type", "object"], "object", 3, True])
def test_parameters_that_are_not_an_object_are_refused(parameters: object) -> None:
    error = error_of([tool("f", parameters)])
    assert error.param == "tools[0].function.parameters"


@pytest.mark.parametrize("kind", ["string", "array", ["object", "null"], None])
def test_parameters_whose_schema_is_not_of_type_object_are_refused(kind: object) -> None:
    error = error_of([tool("f", {"type": kind})])
    assert error.param == "tools[0].function.parameters"
    assert "'object'" in error.message


def test_a_duplicate_name_is_refused_at_the_second() -> None:
    error = error_of([tool("a"), tool("b"), tool("a")])
    assert error.param == "tools[2].function.name"
    assert "'a'" in error.message


@pytest.mark.parametrize("kind", ["web_search", "code_interpreter", "custom"])
def test_an_unknown_tool_type_is_refused(kind: str) -> None:
    error = error_of([tool("a"), {"type": kind, "function": {"name": "b"}}])
    assert error.param == "tools[1].type"


def test_a_definition_without_a_function_or_a_name_is_refused() -> None:
    assert error_of([{"type": "function"}]).param == "tools[0].function"
    assert error_of([{"type": "function", "function": {}}]).param == "tools[0].function.name"


def test_too_many_tools_are_refused() -> None:
    assert len(offer([tool(f"t{i}") for i in range(MAX_TOOLS)]).tools) == MAX_TOOLS
    error = error_of([tool(f"t{i}") for i in range(MAX_TOOLS + 1)])
    assert error.param == "tools"


def test_an_oversized_definition_is_refused() -> None:
    huge = {"type": "object", "description": "x" * (64 * 1024)}
    assert error_of([tool("a"), tool("b", huge)]).param == "tools[1].function"


def test_choice_none_offers_no_tool() -> None:
    parsed = offer([tool("a"), tool("b")], "none")
    assert parsed.choice is ChoiceMode.NONE
    assert len(parsed.tools) == 2
    assert parsed.offered == ()
    assert not parsed.must_call


def test_choice_required_offers_every_tool_and_must_call() -> None:
    parsed = offer([tool("a"), tool("b")], "required")
    assert parsed.choice is ChoiceMode.REQUIRED
    assert [t.name for t in parsed.offered] == ["a", "b"]
    assert parsed.must_call


def test_a_named_choice_offers_only_that_tool_and_must_call_it() -> None:
    parsed = offer([tool("a"), tool("b"), tool("c")], named("b"))
    assert (parsed.choice, parsed.forced) == (ChoiceMode.FUNCTION, "b")
    assert [t.name for t in parsed.offered] == ["b"]
    assert parsed.must_call


def test_a_choice_naming_a_function_not_offered_is_refused() -> None:
    error = error_of([tool("a")], named("b"))
    assert error.param == "tool_choice.function.name"
    assert "'b'" in error.message


@pytest.mark.parametrize(
    ("choice", "param"),
    [
        ("sometimes", "tool_choice"),
        ({"type": "function"}, "tool_choice.function"),
        ({"type": "function", "function": {}}, "tool_choice.function.name"),
        ({"type": "allowed_tools"}, "tool_choice.type"),
    ],
)
def test_a_malformed_choice_is_refused_naming_its_field(choice: object, param: str) -> None:
    assert error_of([tool("a")], choice).param == param


@pytest.mark.parametrize("choice", ["required", named("a")])
@pytest.mark.parametrize("tools", [None, []])
def test_a_choice_that_asks_for_a_call_without_tools_is_refused(
    choice: object, tools: object
) -> None:
    error = error_of(tools, choice)
    assert error.param == "tool_choice"
    assert "no 'tools'" in error.message


def test_parallel_tool_calls_false_allows_one_call_per_reply() -> None:
    assert offer([tool("a")], parallel_tool_calls=False).max_calls == 1
    assert not offer([tool("a")], parallel_tool_calls=False).parallel
    assert offer([tool("a")], parallel_tool_calls=True).max_calls is None
    assert offer([tool("a")], parallel_tool_calls=None).max_calls is None


# -- the legacy functions / function_call ---------------------------------------------


def test_legacy_functions_are_an_offer_of_one_call_per_reply() -> None:
    parsed = offer(functions=[{"name": "a", "parameters": OBJECT}, {"name": "b"}])
    assert parsed.legacy
    assert [t.name for t in parsed.tools] == ["a", "b"]
    assert parsed.tools[0].parameters == OBJECT
    assert parsed.choice is ChoiceMode.AUTO
    assert parsed.max_calls == 1


@pytest.mark.parametrize(
    ("function_call", "mode", "offered"),
    [
        (None, ChoiceMode.AUTO, ["a", "b"]),
        ("auto", ChoiceMode.AUTO, ["a", "b"]),
        ("none", ChoiceMode.NONE, []),
        ({"name": "b"}, ChoiceMode.FUNCTION, ["b"]),
    ],
)
def test_legacy_function_call_is_the_choice(
    function_call: object, mode: ChoiceMode, offered: list[str]
) -> None:
    parsed = offer(functions=[{"name": "a"}, {"name": "b"}], function_call=function_call)
    assert parsed.choice is mode
    assert [t.name for t in parsed.offered] == offered


@pytest.mark.parametrize("function_call", ["required", "always", {"name": 3}, {}, ["a"], 1])
def test_a_malformed_legacy_function_call_is_refused(function_call: object) -> None:
    error = error_of(functions=[{"name": "a"}], function_call=function_call)
    assert error.param == "function_call"


def test_legacy_definitions_are_checked_naming_their_field() -> None:
    assert error_of(functions=[{"name": "a b"}]).param == "functions[0].name"
    assert error_of(functions=[{"name": "a"}, {"name": "a"}]).param == "functions[1].name"
    assert error_of(functions=[{"name": "a", "parameters": []}]).param == (
        "functions[0].parameters"
    )
    assert error_of(functions=[{"name": "a", "parameters": {"type": "string"}}]).param == (
        "functions[0].parameters"
    )
    assert error_of(functions=[{}]).param == "functions[0].name"
    assert error_of(functions={"name": "a"}).param == "functions"


def test_a_legacy_call_naming_a_function_not_offered_is_refused() -> None:
    error = error_of(functions=[{"name": "a"}], function_call={"name": "b"})
    assert error.param == "function_call.name"


@pytest.mark.parametrize("functions", [None, []])
def test_a_legacy_call_forced_without_functions_is_refused(functions: object) -> None:
    error = error_of(functions=functions, function_call={"name": "a"})
    assert error.param == "function_call"
    assert "no 'functions'" in error.message


def test_tools_win_over_legacy_functions() -> None:
    parsed = offer([tool("new")], functions=[{"name": "old"}], function_call={"name": "old"})
    assert not parsed.legacy
    assert [t.name for t in parsed.tools] == ["new"]
    assert parsed.choice is ChoiceMode.AUTO
