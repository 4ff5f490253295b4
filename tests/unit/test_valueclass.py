"""``am.valueclass`` against ``dataclasses``, the reference it stands in for: the same class
declared both ways behaves the same in everything am uses."""

import dataclasses
import subprocess
import sys

import pytest

from am import valueclass as vc


def both(frozen: bool):
    """The same class, as a dataclass and as a value class."""

    def body():
        return {
            "__annotations__": {"a": "int", "b": "str", "c": "list", "d": "dict"},
            "b": "x",
            "label": lambda self: f"{self.a}{self.b}",
        }

    ns = body()
    ns["c"], ns["d"] = (
        dataclasses.field(default_factory=list),
        dataclasses.field(default_factory=dict, repr=False),
    )
    ref = dataclasses.dataclass(frozen=frozen)(type("V", (), ns))
    ns = body()
    ns["c"], ns["d"] = vc.field(default_factory=list), vc.field(default_factory=dict, repr=False)
    ours = vc.value_class(frozen=frozen)(type("V", (), ns))
    return ref, ours


@pytest.mark.parametrize("frozen", [True, False])
def test_the_same_as_a_dataclass(frozen):
    ref, ours = both(frozen)
    for args, kw in (((1,), {}), ((1, "y"), {}), ((), {"a": 2, "c": [3]}), ((4,), {"d": {1: 2}})):
        r, o = ref(*args, **kw), ours(*args, **kw)
        assert repr(r) == repr(o)
        assert [getattr(r, n) for n in "abcd"] == [getattr(o, n) for n in "abcd"]
        assert dataclasses.asdict(r) == vc.asdict(o)
        assert r.label() == o.label()
        assert (o == ours(*args, **kw)) and (o != ours(99)) and o != r
        assert dataclasses.replace(r, b="z").b == vc.replace(o, b="z").b == "z"
    assert [f.name for f in dataclasses.fields(ref)] == [f.name for f in vc.fields(ours)]
    assert ours(1).c is not ours(1).c  # a fresh default each time
    assert ours.b == "x" and not hasattr(ours, "c")  # as dataclasses leaves the class


def test_frozen_values_refuse_changes_and_hash_by_value():
    _, ours = both(True)
    o = ours(1)
    with pytest.raises(vc.FrozenInstanceError):
        o.a = 2
    with pytest.raises(vc.FrozenInstanceError):
        del o.a
    assert isinstance(vc.FrozenInstanceError("x"), AttributeError)
    p = vc.value_class(type("P", (), {"__annotations__": {"x": "int"}}))
    assert hash(p(1)) == hash(p(1)) and {p(1), p(1)} == {p(1)}
    _, mutable = both(False)
    m = mutable(1)
    m.a = 5
    assert m.a == 5
    with pytest.raises(TypeError):
        hash(m)  # compared by value and changeable: no hash, as dataclasses


def test_wrong_arguments_are_type_errors_as_for_any_call():
    _, ours = both(True)
    for args, kw, says in (
        ((), {}, "missing required argument: 'a'"),
        ((1,), {"a": 2}, "multiple values for argument 'a'"),
        ((1,), {"zz": 2}, "unexpected keyword argument 'zz'"),
        ((1, 2, 3, 4, 5), {}, "takes 4 positional arguments but 5 given"),
    ):
        with pytest.raises(TypeError, match=says):
            ours(*args, **kw)
    with pytest.raises(TypeError, match="unexpected keyword argument 'zz'"):
        vc.replace(ours(1), zz=1)
    with pytest.raises(TypeError, match="non-default field 'b' follows a default field"):
        vc.value_class(type("W", (), {"__annotations__": {"a": "int", "b": "int"}, "a": 1}))
    with pytest.raises(ValueError, match="mutable default for field 'a'"):
        vc.value_class(type("M", (), {"__annotations__": {"a": "list"}, "a": []}))
    with pytest.raises(TypeError, match="has no fields"):
        vc.value_class(type("E", (), {}))
    with pytest.raises(TypeError):
        vc.fields(object())
    with pytest.raises(TypeError):
        vc.asdict(ours)  # the class, not a value


def test_values_inside_values_and_lists_become_plain():
    inner = vc.value_class(type("I", (), {"__annotations__": {"x": "int"}}))
    outer = vc.value_class(
        type("O", (), {"__annotations__": {"i": "object", "many": "list", "by": "dict"}})
    )
    o = outer(inner(1), [inner(2), (3, inner(4))], {"k": inner(5)})
    got = vc.asdict(o)
    assert got == {"i": {"x": 1}, "many": [{"x": 2}, (3, {"x": 4})], "by": {"k": {"x": 5}}}
    assert got["many"] is not o.many
    assert vc.is_value(inner) and vc.is_value(inner(1)) and not vc.is_value(1)


def test_a_subclass_adds_its_fields_after_its_parents():
    base = vc.value_class(type("B", (), {"__annotations__": {"a": "int"}}))
    sub = vc.value_class(type("S", (base,), {"__annotations__": {"b": "int"}, "b": 2}))
    assert [f.name for f in vc.fields(sub)] == ["a", "b"]
    assert repr(sub(1)) == "S(a=1, b=2)"


def test_a_spawn_imports_neither_dataclasses_nor_inspect():
    """What this module is for: the modules of a spawn's plan load without them."""
    probe = (
        "import sys, am.commands.spawn, am.cli, am.backends.tmux, am.backends.podman; "
        "print(sorted({'dataclasses', 'inspect'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out
    # positive control: the probe sees a module that is imported
    out = subprocess.run(
        [sys.executable, "-c", probe.replace("import sys,", "import sys, dataclasses,")],
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "['dataclasses', 'inspect']", out
