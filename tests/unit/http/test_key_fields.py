"""The API key file's optional fields after each key: `KEY label=NAME daily_usd=0.50
monthly_usd=20`. Bare keys keep working; a wrong field is an error naming the file and
the line, never the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy_core import Budget
from proxy_http.auth import ApiKeyError, key_id, load_api_keys

SECRET = "sk-very-secret-0123456789"


def keys_from(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "keys"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    path = keys_from(tmp_path, text)
    with pytest.raises(ApiKeyError) as caught:
        load_api_keys(None, str(path))
    return str(caught.value)


def test_bare_keys_comments_and_blank_lines_keep_working(tmp_path: Path) -> None:
    path = keys_from(tmp_path, "# team keys\n\nalpha-key\n  beta-key  \n")
    keys = load_api_keys(None, str(path))
    assert keys.accepts("alpha-key")
    assert keys.accepts("beta-key")
    assert not keys.accepts("# team keys")
    assert keys.budgets == {}


def test_fields_give_a_key_its_label_and_budgets_by_key_id(tmp_path: Path) -> None:
    path = keys_from(
        tmp_path,
        f"{SECRET} label=alice daily_usd=0.50 monthly_usd=20\n"
        "bob-key label=bob\n"
        "carol-key monthly_usd=5\n"
        "plain-key\n",
    )
    keys = load_api_keys(None, str(path))
    assert keys.budgets == {
        key_id(SECRET): Budget(label="alice", daily_usd=0.5, monthly_usd=20.0),
        key_id("bob-key"): Budget(label="bob"),
        key_id("carol-key"): Budget(monthly_usd=5.0),
    }
    caller = keys.identify(SECRET)
    assert caller is not None
    assert (caller.key_id, caller.label) == (key_id(SECRET), "alice")
    plain = keys.identify("plain-key")
    assert plain is not None
    assert plain.label is None


def test_keys_from_the_setting_and_admin_keys_still_work_beside_a_file(tmp_path: Path) -> None:
    path = keys_from(tmp_path, "file-key label=f\n")
    keys = load_api_keys("one,two", str(path), admin_keys="boss")
    assert all(keys.accepts(k) for k in ("one", "two", "file-key", "boss"))
    boss = keys.identify("boss")
    assert boss is not None
    assert boss.admin


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (f"{SECRET} colour=red\n", ["line 1", "unknown field 'colour'"]),
        (f"ok-key\n{SECRET} daily_usd=lots\n", ["line 2", "daily_usd must be a number"]),
        (f"{SECRET} monthly_usd=-1\n", ["line 1", "0 or more"]),
        (f"{SECRET} daily_usd=nan\n", ["line 1", "0 or more"]),
        (f"{SECRET} label=a\n# x\nother-key label=a\n", ["line 3", "'a'", "line 1"]),
        (f"{SECRET} label=a\n{SECRET} label=b\n", ["line 2", "line 1", "other fields"]),
        (f"{SECRET} label=a label=b\n", ["line 1", "label is given twice"]),
        (f"{SECRET} label=has/slash\n", ["line 1", "a label is"]),
        (f"{SECRET} secret-part-two\n", ["line 1", "word 2 is not a field"]),
        (f"{SECRET} part/two=x\n", ["line 1", "unknown field at word 2"]),
    ],
)
def test_a_wrong_field_names_the_file_and_line_and_never_the_key(
    tmp_path: Path, text: str, words: list[str]
) -> None:
    message = error_of(tmp_path, text)
    assert str(tmp_path / "keys") in message
    for word in words:
        assert word in message
    assert SECRET not in message
    # A word that is not a known field may be a piece of a key: never repeated either.
    assert "secret-part-two" not in message
    assert "part/two" not in message


def test_the_same_key_twice_with_the_same_fields_is_fine(tmp_path: Path) -> None:
    path = keys_from(tmp_path, f"{SECRET} label=a\n{SECRET} label=a\n")
    assert load_api_keys(None, str(path)).budgets == {key_id(SECRET): Budget(label="a")}


def test_a_zero_budget_is_allowed_and_means_no_spend(tmp_path: Path) -> None:
    path = keys_from(tmp_path, f"{SECRET} daily_usd=0\n")
    assert load_api_keys(None, str(path)).budgets[key_id(SECRET)].daily_usd == 0.0
