"""The schema helpers scenarios and snapshots share (pidfs_fuse/schema.py): each typed getter
returns a good value unchanged and refuses a bad one with EINVAL naming the file and the path,
the value spelled as the file's notation writes it; both formats' errors are SchemaErrors."""

from __future__ import annotations

import errno

import pytest

from pidfs_fuse import scenario, snapshot
from pidfs_fuse.kernel import Kernel
from pidfs_fuse.schema import JSON, TOML, Schema, SchemaError


@pytest.mark.parametrize(("notation", "value", "got"), [
    (TOML, "x", '"x"'),
    (TOML, 'a"b', '"a\\"b"'),
    (TOML, 1, "1 (an integer)"),
    (TOML, True, "true (a boolean)"),
    (TOML, 1.5, "1.5 (a float)"),
    (TOML, [1], "[1] (an array)"),
    (TOML, {"a": 1}, "{'a': 1} (a table)"),
    (JSON, "x", '"x"'),
    (JSON, 1, "1"),
    (JSON, True, "true"),
    (JSON, None, "null"),
    (JSON, 1.5, "1.5"),
    (JSON, [1], "an array"),
    (JSON, {"a": 1}, "an object"),
    (JSON, "y" * 100, '"' + "y" * 55 + "..."),
], ids=repr)
def test_values_are_spelled_as_their_notation_writes_them(notation, value: object, got: str) -> None:
    assert notation.got(value) == got


@pytest.mark.parametrize(("call", "message"), [
    (lambda s: s.int_(True, "a.b", 0, 9), "f: a.b: expected an integer in 0..9, got true (a boolean)"),
    (lambda s: s.int_(10, "a.b", 0, 9), "f: a.b: expected an integer in 0..9, got 10 (an integer)"),
    (lambda s: s.bool_(0, "on"), "f: on: expected true or false, got 0 (an integer)"),
    (lambda s: s.str_(5, "name"), "f: name: expected a string, got 5 (an integer)"),
    (lambda s: s.strs(["a", 1], "argv"), "f: argv: expected an array of strings, got ['a', 1] (an array)"),
    (lambda s: s.ints([], "set_tid", 1, 5),
     "f: set_tid: expected a non-empty array of integers in 1..5, got [] (an array)"),
    (lambda s: s.seconds(float("nan"), "start"), "f: start: expected a number of seconds >= 0, got nan (a float)"),
    (lambda s: s.keys({"x": 1}, {"b", "a"}, lambda k: f"t.{k}"), "f: t.x: unknown key; valid keys: a, b"),
], ids=["bool is not int", "int out of range", "bool", "str", "strs", "ints empty", "seconds nan", "keys"])
def test_getters_refuse_with_einval_naming_file_and_path(call, message: str) -> None:
    with pytest.raises(SchemaError) as e:
        call(Schema("f", TOML))
    assert (e.value.errno, str(e.value)) == (errno.EINVAL, message)


def test_getters_return_good_values() -> None:
    s = Schema("f", JSON)
    assert s.int_(9, "p", 0, 9) == 9
    assert s.bool_(False, "p") is False
    assert s.str_("", "p") == ""
    assert s.strs(["a"], "p") == ["a"]
    assert s.ints([1, 5], "p", 1, 5) == (1, 5)
    assert s.seconds(1.5, "p") == 1_500_000_000
    s.keys({"a": 1}, {"a"}, str)


def test_both_formats_raise_schema_errors() -> None:
    with pytest.raises(SchemaError) as e1:
        scenario.loads("[[process]]\nname = 1", source="t.toml")
    assert isinstance(e1.value, scenario.ScenarioError)
    assert str(e1.value) == "t.toml: process[0].name: expected a string, got 1 (an integer)"
    doc = snapshot.dump(Kernel(clock=lambda: 0))
    doc["clock"] = "0"
    with pytest.raises(SchemaError) as e2:
        snapshot.restore(doc, source="s.json")
    assert isinstance(e2.value, snapshot.SnapshotError)
    assert str(e2.value) == 's.json: clock: expected an integer in 0..4611686018427387904, got "0"'
