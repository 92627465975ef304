"""The Lua scripts as files (``broker/store/lua``): loaded by name, includes resolved, each
file saying what it is for and which keys it touches."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from broker.store import scripts

LUA = Path(scripts.__file__).parent / "lua"
SCRIPTS = sorted(p.stem for p in LUA.glob("*.lua"))
LIBRARIES = sorted(p.stem for p in (LUA / "lib").glob("*.lua"))


def test_there_are_scripts_and_libraries() -> None:
    assert "apply" in SCRIPTS and "msglog_record" in SCRIPTS
    assert "guards" in LIBRARIES and "record_message" in LIBRARIES


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_loads_and_says_which_keys_it_touches(name: str) -> None:
    script = scripts.load(name)
    assert script is scripts.load(name)  # read once
    assert script.sha == hashlib.sha1(script.source.encode()).hexdigest()
    own = (LUA / f"{name}.lua").read_text(encoding="utf-8")
    assert script.source.endswith(own)
    assert own.startswith(f"-- {name}: ")
    assert "-- KEYS" in own


@pytest.mark.parametrize("name", LIBRARIES)
def test_every_library_says_what_it_is(name: str) -> None:
    assert (LUA / "lib" / f"{name}.lua").read_text(encoding="utf-8").startswith(f"-- {name}: ")


def test_includes_come_once_each_before_what_uses_them() -> None:
    source = scripts.load("apply").source
    text = {n: (LUA / "lib" / f"{n}.lua").read_text(encoding="utf-8") for n in LIBRARIES}
    used = ["guards", "message", "remove_entry", "msglog", "record_message"]
    at = [source.index(text[n]) for n in used]
    assert all(source.count(text[n]) == 1 for n in used)
    assert at.index(min(at)) == 0  # guards first: message uses it
    assert at[0] < at[1] and at[3] < at[4]  # msglog before record_message
    assert max(at) < source.index((LUA / "apply.lua").read_text(encoding="utf-8"))


def test_only_the_candidate_selection_the_counts_and_the_backup_are_read_only() -> None:
    read_only = [n for n in SCRIPTS if not scripts.load(n).writes]
    assert read_only == ["backup_order", "count_ended", "select_candidates", "select_undated"]


def test_an_include_loop_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    files = {
        ("", "looping"): "-- looping: x\n-- include: a\nreturn 1\n",
        ("lib", "a"): "-- a: x\n-- include: b\n",
        ("lib", "b"): "-- b: x\n-- include: a\n",
    }
    monkeypatch.setattr(scripts, "_read", lambda name, folder="": files[(folder, name)])
    with pytest.raises(ValueError, match="include loop: looping -> a -> b -> a"):
        scripts.load.__wrapped__("looping")


def test_a_directive_counts_only_in_the_header(monkeypatch: pytest.MonkeyPatch) -> None:
    files = {
        ("", "late"): "-- late: x\n-- read-only\n\nlocal a = 1\n-- include: nothing\nreturn a\n",
    }
    monkeypatch.setattr(scripts, "_read", lambda name, folder="": files[(folder, name)])
    script = scripts.load.__wrapped__("late")
    assert not script.writes and script.source == files[("", "late")]


def test_names_are_plain() -> None:
    with pytest.raises(ValueError, match="not a Lua script name"):
        scripts.load("../lua/apply")
    with pytest.raises(FileNotFoundError):
        scripts.load("no_such_script")


def test_key_lists_give_positions_as_lua_counts_them() -> None:
    call = scripts.KeyList("a", "b")
    assert (call.add("c"), call.add("a"), call.add("c")) == (3, 1, 3)
    assert call.extend(["a", "d"]) == 4  # a block keeps its layout, repeats included
    assert call.names == ["a", "b", "c", "a", "d"] and len(call) == 5
